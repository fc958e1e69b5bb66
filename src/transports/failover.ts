// Failover between a primary and a secondary transport, and the error-burst detector that lets
// the engine pause a sending instead of failing thousands of recipients.
import type { OutgoingMessage, SendResult, Transport } from './transport.ts';

export interface FailoverOptions {
  /** Consecutive failed messages on the primary before traffic moves to the secondary. */
  threshold?: number;
  /** How long traffic stays on the secondary before the primary is tried again. */
  cooldownMs?: number;
  now?: () => number;
}

/**
 * A message "fails" on a transport when it comes back retryable (connection down, throttled,
 * 5xx): a permanent answer is about the recipient, not the provider, and is passed through.
 */
export class FailoverTransport implements Transport {
  readonly name: string;
  private failures = 0;
  private failedOverUntil = 0;
  /** After a failover the primary is on probation: one failure sends traffic back at once. */
  private probing = false;
  private readonly threshold: number;
  private readonly cooldownMs: number;
  private readonly now: () => number;

  constructor(private primary: Transport, private secondary: Transport, opts: FailoverOptions = {}) {
    this.name = `failover(${primary.name},${secondary.name})`;
    this.threshold = Math.max(1, opts.threshold ?? 5);
    this.cooldownMs = opts.cooldownMs ?? 30_000;
    this.now = opts.now ?? Date.now;
  }

  /** 'secondary' while failed over; after the cool-down the next batch probes the primary. */
  get active(): 'primary' | 'secondary' {
    return this.now() < this.failedOverUntil ? 'secondary' : 'primary';
  }

  async send(batch: OutgoingMessage[], signal?: AbortSignal): Promise<SendResult[]> {
    if (this.active === 'secondary') return safeSend(this.secondary, batch, signal);
    const results = await safeSend(this.primary, batch, signal);
    const retry: number[] = [];
    results.forEach((r, i) => {
      if (r.status === 'retryable' && !isRateLimit(r)) {
        this.failures++;
        retry.push(i);
      } else if (r.status === 'sent') {
        this.failures = 0;
        this.probing = false;
      }
    });
    if (this.failures >= (this.probing ? 1 : this.threshold)) {
      // Tripped: move over now, and give this batch's failed messages their second chance at once.
      this.failedOverUntil = this.now() + this.cooldownMs;
      this.failures = 0;
      this.probing = true;
      if (retry.length) {
        const again = await safeSend(this.secondary, retry.map((i) => batch[i]), signal);
        retry.forEach((i, k) => (results[i] = again[k]));
      }
    }
    return results;
  }

  async close(): Promise<void> {
    await Promise.all([this.primary.close(), this.secondary.close()]);
  }
}

// Our own rate limiter's "wait" is not a provider failure.
const isRateLimit = (r: SendResult) => r.status === 'retryable' && r.error === 'rate limited';

async function safeSend(t: Transport, batch: OutgoingMessage[], signal?: AbortSignal): Promise<SendResult[]> {
  try {
    return await t.send(batch, signal);
  } catch (err) {
    return batch.map(() => ({ status: 'retryable' as const, error: `${t.name}: ${(err as Error)?.message ?? err}` }));
  }
}

export interface BurstOptions {
  /** Sliding window over which errors are counted. */
  windowMs?: number;
  /** At least this many results in the window before a verdict (no pause on 2 of 3). */
  minSamples?: number;
  /** Pause when the share of errors (retryable or permanent non-gone) reaches this. */
  maxErrorRatio?: number;
  now?: () => number;
}

/**
 * Per sending: feed every batch's results; `record` answers true once the sending should pause.
 * A `gone` answer is a dead address (normal churn), not a transport error, and is not counted.
 * Rate-limit waits are not counted either.
 */
export class ErrorBurstDetector {
  private windows = new Map<number, { at: number; errors: number; total: number }[]>();
  private readonly windowMs: number;
  private readonly minSamples: number;
  private readonly maxErrorRatio: number;
  private readonly now: () => number;

  constructor(opts: BurstOptions = {}) {
    this.windowMs = opts.windowMs ?? 60_000;
    this.minSamples = opts.minSamples ?? 50;
    this.maxErrorRatio = opts.maxErrorRatio ?? 0.5;
    this.now = opts.now ?? Date.now;
  }

  record(sendingId: number, results: SendResult[]): boolean {
    const now = this.now();
    const list = (this.windows.get(sendingId) ?? []).filter((e) => e.at > now - this.windowMs);
    let errors = 0;
    let total = 0;
    for (const r of results) {
      // "Not yet" answers (throttling, connection down: retryAfterMs) cost no attempt and fail
      // nobody; the sending simply waits for the provider, so they are no reason to pause.
      if (isRateLimit(r) || (r.status === 'retryable' && r.retryAfterMs !== undefined) || (r.status === 'permanent' && r.gone)) continue;
      total++;
      if (r.status !== 'sent') errors++;
    }
    list.push({ at: now, errors, total });
    this.windows.set(sendingId, list);
    const sum = list.reduce((a, e) => ({ errors: a.errors + e.errors, total: a.total + e.total }), { errors: 0, total: 0 });
    const burst = sum.total >= this.minSamples && sum.errors / sum.total >= this.maxErrorRatio;
    // Once it said "pause", a resumed sending starts from a clean window (the API process that
    // resumes it cannot reach this detector).
    if (burst) this.windows.delete(sendingId);
    return burst;
  }

  /** Forget a sending (resumed, finished): it starts from a clean window. */
  reset(sendingId: number): void {
    this.windows.delete(sendingId);
  }
}
