// Prometheus metrics: one registry per app; domains add their own metrics to it.
import type { FastifyInstance } from 'fastify';
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { createHash, timingSafeEqual } from 'node:crypto';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Config } from './config.ts';

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: 'hei_http_requests_total',
    help: 'HTTP requests by route, method and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'hei_http_request_duration_seconds',
    help: 'HTTP request latency by route, method and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  return { registry, requests, latency };
}
export type Metrics = ReturnType<typeof createMetrics>;

export function installRequestMetrics(app: FastifyInstance, metrics: Metrics): void {
  app.addHook('onResponse', async (request, reply) => {
    // The route pattern, never the raw URL: label cardinality stays bounded.
    const route = request.routeOptions.url ?? 'unmatched';
    const labels = { method: request.method, route, status: String(reply.statusCode) };
    metrics.requests.inc(labels);
    metrics.latency.observe(labels, reply.elapsedTime / 1000);
  });
}

/**
 * Who may read `/metrics` where: with METRICS_PORT only its own listener serves them (`elsewhere` on
 * the API port); with METRICS_TOKEN a matching bearer token is needed on either.
 */
export function metricsAccess(config: Pick<Config, 'metricsToken' | 'metricsPort'>, authorization: string | undefined, listener: 'api' | 'metrics'): 'ok' | 'elsewhere' | 'unauthorized' {
  if (listener === 'api' && config.metricsPort !== undefined) return 'elsewhere';
  if (config.metricsToken === undefined) return 'ok';
  const given = /^Bearer\s+(\S+)$/i.exec(authorization ?? '')?.[1] ?? '';
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(config.metricsToken)) ? 'ok' : 'unauthorized';
}

/** The separate metrics listener (METRICS_PORT): `GET /metrics` and nothing else. */
export async function startMetricsServer(metrics: Metrics, config: Pick<Config, 'metricsToken' | 'metricsPort' | 'metricsHost'>): Promise<Server> {
  const server = createServer((req, res) => {
    const json = (status: number, error: string) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error }));
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') return json(404, 'Not found');
    if (metricsAccess(config, req.headers.authorization, 'metrics') !== 'ok') return json(401, 'Invalid metrics token');
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      () => json(500, 'Internal server error'),
    );
  });
  server.listen(config.metricsPort ?? 0, config.metricsHost);
  await once(server, 'listening');
  return server;
}
