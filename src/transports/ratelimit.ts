// Rate limits per transport account: token buckets over several windows ('500/s,20000/h'), SMS
// cost in segments. A throttled message waits inside send() up to maxWaitMs; past that it comes
// back `retryable` with retryAfterMs, which the engine treats as "not yet", not as a failure.
// Fairness between sendings is the engine's claim order (priority, then age): the limiter admits
// messages in the order of the batch it is given.
import type { Queryable } from '../db/connection.ts';
import type { OutgoingMessage, SendResult, Transport } from './transport.ts';
import { countSegments } from './sms-encoding.ts';
import { sleep } from '../platform/background.ts';

export interface RateWindow {
  limit: number;
  periodMs: number;
}

const PERIODS: Record<string, number> = { s: 1000, sec: 1000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000 };

/** '500/s,20000/h' → windows. Throws on anything else. */
export function parseRate(spec: string): RateWindow[] {
  return spec.split(',').map((part) => {
    const m = /^\s*(\d+(?:\.\d+)?)\s*\/\s*(\d*)\s*(s|sec|m|min|h|d)\s*$/.exec(part);
    if (!m || Number(m[1]) <= 0) throw new Error(`invalid rate "${part.trim()}": use e.g. 500/s,20000/h`);
    return { limit: Number(m[1]), periodMs: PERIODS[m[3]] * (m[2] ? Number(m[2]) : 1) };
  });
}

/**
 * Bucket size: per-second windows smooth to 100 ms of traffic so that a rate holds over short
 * spans too (50/s never lets 100 through in the first second); longer windows allow their full
 * limit as a burst.
 */
export const capacityOf = (w: RateWindow): number => (w.periodMs <= 1000 ? Math.max(1, w.limit / 10) : w.limit);
const refillPerMs = (w: RateWindow): number => w.limit / w.periodMs;

interface BucketState {
  tokens: number;
  at: number;
}

/** Admits a prefix of `costs` against the buckets (mutated); returns how many and the wait for the next. */
function admit(windows: RateWindow[], states: BucketState[], costs: number[], now: number): { admitted: number; waitMs: number } {
  for (let i = 0; i < windows.length; i++) {
    const w = windows[i];
    const s = states[i];
    s.tokens = Math.min(capacityOf(w), s.tokens + (now - s.at) * refillPerMs(w));
    s.at = now;
  }
  let admitted = 0;
  for (const cost of costs) {
    // A message dearer than a bucket's size passes when that bucket is full and leaves it in debt.
    const ok = windows.every((w, i) => states[i].tokens >= Math.min(cost, capacityOf(w)));
    if (!ok) break;
    for (const s of states) s.tokens -= cost;
    admitted++;
  }
  let waitMs = 0;
  if (admitted < costs.length) {
    const cost = costs[admitted];
    windows.forEach((w, i) => {
      const need = Math.min(cost, capacityOf(w)) - states[i].tokens;
      if (need > 0) waitMs = Math.max(waitMs, need / refillPerMs(w));
    });
  }
  return { admitted, waitMs: Math.ceil(waitMs) };
}

export interface BucketStore {
  take(account: string, windows: RateWindow[], costs: number[]): Promise<{ admitted: number; waitMs: number }>;
}

export class MemoryBucketStore implements BucketStore {
  private buckets = new Map<string, BucketState[]>();
  async take(account: string, windows: RateWindow[], costs: number[]) {
    const key = `${account}|${windows.map((w) => w.periodMs).join(',')}`;
    let states = this.buckets.get(key);
    if (!states) this.buckets.set(key, (states = windows.map((w) => ({ tokens: capacityOf(w), at: Date.now() }))));
    return admit(windows, states, costs, Date.now());
  }
}

/**
 * Buckets in table transport_rate_buckets: every take is one short transaction that locks the
 * account's rows, so the limit holds across worker processes and survives a restart.
 */
export class DbBucketStore implements BucketStore {
  constructor(private db: { transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> }) {}

  async take(account: string, windows: RateWindow[], costs: number[]) {
    return this.db.transaction(async (tx) => {
      const periods = windows.map((w) => w.periodMs);
      await tx.query(
        `INSERT INTO transport_rate_buckets (account, window_ms, tokens)
         SELECT $1, p, c FROM unnest($2::bigint[], $3::float8[]) AS t(p, c)
         ON CONFLICT (account, window_ms) DO NOTHING`,
        [account, periods, windows.map(capacityOf)],
      );
      const { rows } = await tx.query<{ window_ms: number; tokens: number; at: number }>(
        `SELECT window_ms, tokens, (extract(epoch from updated_at) * 1000)::float8 AS at,
                (extract(epoch from clock_timestamp()) * 1000)::float8 AS now
         FROM transport_rate_buckets WHERE account = $1 AND window_ms = ANY($2::bigint[]) FOR UPDATE`,
        [account, periods],
      );
      const now = Number((rows[0] as any)?.now ?? Date.now());
      const states = windows.map((w) => {
        const r = rows.find((x) => Number(x.window_ms) === w.periodMs);
        return { tokens: r ? Number(r.tokens) : capacityOf(w), at: r ? Number(r.at) : now };
      });
      const result = admit(windows, states, costs, now);
      await tx.query(
        `UPDATE transport_rate_buckets AS b SET tokens = t.tokens, updated_at = to_timestamp($4::float8 / 1000)
         FROM unnest($2::bigint[], $3::float8[]) AS t(p, tokens)
         WHERE b.account = $1 AND b.window_ms = t.p`,
        [account, periods, states.map((s) => s.tokens), now],
      );
      return result;
    });
  }
}

/** Cost of a message in the account's currency: SMS segments, otherwise 1. */
export function messageCost(m: OutgoingMessage): number {
  return m.content.kind === 'sms' ? countSegments(m.content.text) : 1;
}


export interface RateLimitOptions {
  account: string;
  windows: RateWindow[];
  store: BucketStore;
  /** How long a message may wait for tokens inside one send() before it is handed back. */
  maxWaitMs?: number;
  /** Shortest pause between two takes (keeps the store's load bounded at high rates). */
  minPollMs?: number;
}

export class RateLimitedTransport implements Transport {
  readonly name: string;
  constructor(private inner: Transport, private opts: RateLimitOptions) {
    this.name = `${inner.name}+rate`;
  }

  async send(batch: OutgoingMessage[], signal?: AbortSignal): Promise<SendResult[]> {
    const results: SendResult[] = new Array(batch.length);
    const costs = batch.map(messageCost);
    const deadline = Date.now() + (this.opts.maxWaitMs ?? 5000);
    const inflight: Promise<void>[] = [];
    let next = 0;
    while (next < batch.length) {
      const { admitted, waitMs } = await this.opts.store.take(this.opts.account, this.opts.windows, costs.slice(next));
      if (admitted > 0) {
        const from = next;
        const chunk = batch.slice(from, from + admitted);
        // Admitted messages leave at once; the next take does not wait for their answers.
        inflight.push(
          this.inner.send(chunk, signal).then(
            (r) => r.forEach((x, i) => (results[from + i] = x)),
            (err) => chunk.forEach((_, i) => (results[from + i] = { status: 'retryable', error: String(err?.message ?? err) })),
          ),
        );
        next += admitted;
        continue;
      }
      if (signal?.aborted || Date.now() + waitMs > deadline) {
        for (let i = next; i < batch.length; i++) results[i] = { status: 'retryable', error: 'rate limited', retryAfterMs: Math.max(waitMs, 1) };
        break;
      }
      await sleep(Math.max(waitMs, this.opts.minPollMs ?? 5), signal);
    }
    await Promise.all(inflight);
    return results;
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
