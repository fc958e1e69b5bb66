/** A small time-bounded cache for hot lookups (tokens, clubs). Bounded in size; oldest evicted. */
export class TtlCache<K, V> {
  private readonly entries = new Map<K, { value: V; until: number }>();

  constructor(
    private ttlMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  setTtl(ms: number): void {
    this.ttlMs = ms;
  }

  async get(key: K, load: () => Promise<V>): Promise<V> {
    const hit = this.entries.get(key);
    const now = Date.now();
    if (hit && hit.until > now) return hit.value;
    const value = await load();
    if (this.ttlMs > 0) {
      if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value as K);
      this.entries.set(key, { value, until: now + this.ttlMs });
    }
    return value;
  }

  delete(key: K): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }
}
