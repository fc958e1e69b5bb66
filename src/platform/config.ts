// Configuration from the environment, read once. Everything has a default that runs locally.
import { resolve } from 'node:path';

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  databaseUrl?: string;
  logLevel: string;
  publicBaseUrl: string;
  shortenerBaseUrl: string;
  /** Token buckets: capacity and refill per second; enforcement switch per bucket type. */
  rateLimit: {
    general: { capacity: number; refillPerSecond: number; enforce: boolean };
    reporting: { capacity: number; refillPerSecond: number; enforce: boolean };
  };
  /** Seconds a client token lookup is cached in process (revocation delay at most this long). */
  tokenCacheSeconds: number;
  bodyLimitBytes: number;
  /** `/metrics` needs `Authorization: Bearer <token>` when set (METRICS_TOKEN). */
  metricsToken?: string;
  /** `/metrics` is served only on this separate port (METRICS_PORT, on METRICS_HOST), not on the API port. */
  metricsPort?: number;
  metricsHost: string;
}

const bool = (v: string | undefined, dflt: boolean) => (v === undefined ? dflt : ['1', 'true', 'yes', 'on'].includes(v.toLowerCase()));
const num = (v: string | undefined, dflt: number) => (v === undefined || v === '' || Number.isNaN(Number(v)) ? dflt : Number(v));

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const port = num(env.PORT, 3000);
  const publicBaseUrl = env.PUBLIC_BASE_URL ?? `http://localhost:${port}`;
  return {
    port,
    // Local by default: exposing Hei is a deliberate `HOST=0.0.0.0` (docs/deployment.md).
    host: env.HOST || '127.0.0.1',
    dataDir: resolve(env.HEI_DATA_DIR ?? 'data'),
    databaseUrl: env.DATABASE_URL || undefined,
    logLevel: env.LOG_LEVEL ?? 'info',
    publicBaseUrl,
    shortenerBaseUrl: env.SHORTENER_BASE_URL ?? publicBaseUrl,
    rateLimit: {
      general: {
        capacity: num(env.RATE_LIMIT_GENERAL_CAPACITY, 600),
        refillPerSecond: num(env.RATE_LIMIT_GENERAL_REFILL, 100),
        enforce: bool(env.RATE_LIMIT_GENERAL_ENFORCE, false),
      },
      reporting: {
        capacity: num(env.RATE_LIMIT_REPORTING_CAPACITY, 60),
        refillPerSecond: num(env.RATE_LIMIT_REPORTING_REFILL, 2),
        enforce: bool(env.RATE_LIMIT_REPORTING_ENFORCE, true),
      },
    },
    tokenCacheSeconds: num(env.TOKEN_CACHE_SECONDS, 5),
    bodyLimitBytes: num(env.BODY_LIMIT_BYTES, 5 * 1024 * 1024),
    metricsToken: env.METRICS_TOKEN || undefined,
    metricsPort: env.METRICS_PORT ? num(env.METRICS_PORT, 0) : undefined,
    metricsHost: env.METRICS_HOST || env.HOST || '127.0.0.1',
  };
}
