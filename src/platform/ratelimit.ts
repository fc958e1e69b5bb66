// Token buckets per client token, one general and one reporting bucket each. In process memory:
// the check stays off the database on every request; with several API processes each enforces
// its own share (documented in docs/decisions.md).

export interface BucketConfig {
  capacity: number;
  refillPerSecond: number;
  enforce: boolean;
}

export interface BucketState {
  remaining: number;
  /** Seconds until the bucket holds enough tokens again (0 when the request passed). */
  retryAfter: number;
  limited: boolean;
}

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly now: () => number = () => Date.now()) {}

  take(key: string, cost: number, cfg: BucketConfig): BucketState {
    const t = this.now();
    let b = this.buckets.get(key);
    if (!b) {
      b = { tokens: cfg.capacity, at: t };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(cfg.capacity, b.tokens + ((t - b.at) / 1000) * cfg.refillPerSecond);
    b.at = t;
    if (b.tokens - cost < 0 && cfg.enforce) {
      const missing = cost - b.tokens;
      return { remaining: Math.floor(b.tokens), retryAfter: Math.max(1, Math.ceil(missing / cfg.refillPerSecond)), limited: true };
    }
    // In reporting-only mode the bucket keeps going below zero, as the MPC headers allow.
    b.tokens -= cost;
    return { remaining: Math.floor(b.tokens), retryAfter: 0, limited: false };
  }
}
