// Delivery engine settings, from the environment (documented in docs/deployment.md).
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { LATE_AFTER_MS } from '../messaging/sendings.ts';

export interface DeliverySettings {
  /** Dispatches claimed and handed to a transport at once. */
  batchSize: number;
  /** Batches one process works on at the same time. */
  concurrency: number;
  /** Audience chunks one preparation inserts at the same time (PostgreSQL). */
  prepareParallel: number;
  /** How long a claimed dispatch (or a sending being prepared) belongs to its worker. */
  leaseMs: number;
  /** Attempts before a retryable error becomes `failed`. */
  maxAttempts: number;
  /** First retry delay; doubles per attempt (with jitter), capped by retryMaxMs. */
  retryBaseMs: number;
  retryMaxMs: number;
  /** Idle polling interval of the jobs. */
  pollMs: number;
  /** A sending not started this long after scheduled_at fails instead of going out late. */
  lateAfterMs: number;
  /** Only these clubs (dedicated workers; tests). Null = all. */
  clubIds: number[] | null;
  /**
   * Error-burst pause (DECISIONS "Failure"): a transmitting sending is paused when, within
   * `pauseWindowMs`, at least `pauseMinSamples` transport results came back and `pauseErrorRatio`
   * of them were errors; a pause not resumed within `pauseTimeoutMs` fails the sending.
   */
  pauseErrorRatio: number;
  pauseMinSamples: number;
  pauseWindowMs: number;
  pauseTimeoutMs: number;
  /** On shutdown, how long a transport call in flight may take before it is aborted. */
  shutdownGraceMs: number;
  /** fsync the outbox after each batch. */
  outboxFsync: boolean;
  workerId: string;
}

const num = (v: string | undefined, d: number) => (v === undefined || v === '' || !Number.isFinite(Number(v)) ? d : Number(v));

export function loadDeliverySettings(env: NodeJS.ProcessEnv = process.env): DeliverySettings {
  const clubs = env.HEI_DELIVERY_CLUBS?.split(',').map((s) => Number(s.trim())).filter((n) => Number.isSafeInteger(n) && n > 0);
  return {
    batchSize: Math.max(1, num(env.HEI_DELIVERY_BATCH_SIZE, 500)),
    concurrency: Math.max(1, num(env.HEI_DELIVERY_CONCURRENCY, 2)),
    prepareParallel: Math.max(1, num(env.HEI_DELIVERY_PREPARE_PARALLEL, 2)),
    leaseMs: Math.max(1000, num(env.HEI_DELIVERY_LEASE_SECONDS, 120) * 1000),
    maxAttempts: Math.max(1, num(env.HEI_DELIVERY_MAX_ATTEMPTS, 5)),
    retryBaseMs: Math.max(0, num(env.HEI_DELIVERY_RETRY_BASE_MS, 5_000)),
    retryMaxMs: Math.max(0, num(env.HEI_DELIVERY_RETRY_MAX_MS, 15 * 60_000)),
    pollMs: Math.max(10, num(env.HEI_DELIVERY_POLL_MS, 200)),
    lateAfterMs: LATE_AFTER_MS,
    clubIds: clubs && clubs.length ? clubs : null,
    pauseErrorRatio: Math.min(1, Math.max(0.01, num(env.HEI_PAUSE_ERROR_RATIO, 0.5))),
    pauseMinSamples: Math.max(1, Math.round(num(env.HEI_PAUSE_MIN_SAMPLES, 50))),
    pauseWindowMs: Math.max(1000, num(env.HEI_PAUSE_WINDOW_SECONDS, 60) * 1000),
    pauseTimeoutMs: Math.max(60_000, num(env.HEI_PAUSE_TIMEOUT_HOURS, 24) * 3_600_000),
    shutdownGraceMs: Math.max(0, num(env.HEI_SHUTDOWN_GRACE_SECONDS, 10) * 1000),
    outboxFsync: !['0', 'false', 'no', 'off'].includes((env.HEI_OUTBOX_FSYNC ?? '').toLowerCase()),
    workerId: `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`,
  };
}

/** The engine's notion of now: injectable so that tests can move time (20-minute rule). */
export type Clock = () => Date;
export const systemClock: Clock = () => new Date();
