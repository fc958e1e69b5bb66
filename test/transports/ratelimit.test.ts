// Rate limits: accuracy, several windows, SMS segments as cost, buckets in the database that
// survive a restart and hold across processes (PGlite or the PostgreSQL of DATABASE_URL).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { DbBucketStore, MemoryBucketStore, parseRate, RateLimitedTransport, type BucketStore } from '../../src/transports/ratelimit.ts';
import type { OutgoingMessage, SendResult, Transport } from '../../src/transports/transport.ts';
import { openTestDatabase } from '../helpers.ts';
import { sms } from './fixtures.ts';

const db = await openTestDatabase();
after(() => db.close());
const account = () => `test:${randomBytes(4).toString('hex')}`;

class Recorder implements Transport {
  readonly name = 'recorder';
  times: number[] = [];
  async send(batch: OutgoingMessage[]): Promise<SendResult[]> {
    const now = Date.now();
    return batch.map((m) => {
      this.times.push(now);
      return { status: 'sent', providerId: String(m.dispatchId) };
    });
  }
  async close() {}
}

test('rate specs', () => {
  assert.deepEqual(parseRate('500/s,20000/h'), [
    { limit: 500, periodMs: 1000 },
    { limit: 20000, periodMs: 3_600_000 },
  ]);
  assert.deepEqual(parseRate('30/m, 10/5s'), [
    { limit: 30, periodMs: 60_000 },
    { limit: 10, periodMs: 5000 },
  ]);
  assert.throws(() => parseRate('fast'), /invalid rate/);
  assert.throws(() => parseRate('0/s'), /invalid rate/);
});

for (const [label, store] of [
  ['memory', () => new MemoryBucketStore()],
  ['database', () => new DbBucketStore(db)],
] as [string, () => BucketStore][]) {
  test(`50/s held within ±10 % over 2 s (${label} buckets); the rest waits as retryable with retryAfterMs`, async () => {
    const inner = new Recorder();
    const t = new RateLimitedTransport(inner, { account: account(), windows: parseRate('50/s'), store: store(), maxWaitMs: 2000 });
    const started = Date.now();
    const r = await t.send(Array.from({ length: 300 }, (_, i) => sms(`r${i}`)));
    const sent = r.filter((x) => x.status === 'sent').length;
    const elapsed = (Math.max(...inner.times) - started) / 1000;
    assert.ok(sent >= 90 && sent <= 110, `sent ${sent} in 2 s`);
    assert.ok(elapsed <= 2.05, `elapsed ${elapsed}`);
    const waiting = r.filter((x) => x.status === 'retryable');
    assert.equal(waiting.length, 300 - sent);
    assert.ok(waiting.every((x) => x.status === 'retryable' && x.error === 'rate limited' && x.retryAfterMs! > 0));
  });
}

test('several windows: the tightest one wins (100/s,30/m)', async () => {
  const t = new RateLimitedTransport(new Recorder(), { account: account(), windows: parseRate('100/s,30/m'), store: new DbBucketStore(db), maxWaitMs: 300 });
  const r = await t.send(Array.from({ length: 50 }, (_, i) => sms(`w${i}`)));
  assert.equal(r.filter((x) => x.status === 'sent').length, 30);
  const after = r.find((x) => x.status === 'retryable') as { retryAfterMs: number };
  assert.ok(after.retryAfterMs > 1000 && after.retryAfterMs <= 2000, `retryAfterMs ${after.retryAfterMs}`); // one token per 2 s
});

test('SMS cost is counted in segments', async () => {
  const inner = new Recorder();
  const t = new RateLimitedTransport(inner, { account: account(), windows: parseRate('100/s'), store: new MemoryBucketStore(), maxWaitMs: 1000 });
  const seven = 'x'.repeat(153 * 7);
  const r = await t.send(Array.from({ length: 40 }, () => sms(seven)));
  const sent = r.filter((x) => x.status === 'sent').length;
  // 10 burst + 100 per second, 7 each → about 15 in one second
  assert.ok(sent >= 13 && sent <= 17, `sent ${sent}`);
});

test('buckets survive a restart and are shared by processes using the same account', async () => {
  const acc = account();
  const windows = parseRate('30/h');
  const first = new DbBucketStore(db);
  assert.deepEqual((await first.take(acc, windows, Array(20).fill(1))).admitted, 20);
  // "Restart": a new store object, same table.
  const second = new DbBucketStore(db);
  const r = await second.take(acc, windows, Array(20).fill(1));
  assert.equal(r.admitted, 10);
  assert.ok(r.waitMs > 100_000 && r.waitMs <= 120_000, `waitMs ${r.waitMs}`); // 1 token per 120 s
  const { rows } = await db.query<{ tokens: number }>(`SELECT tokens FROM transport_rate_buckets WHERE account = $1`, [acc]);
  assert.equal(rows.length, 1);
  assert.ok(rows[0].tokens < 1);

  // Two "processes" taking at once never exceed the limit together.
  const acc2 = account();
  const a = new DbBucketStore(db);
  const b = new DbBucketStore(db);
  const res = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).take(acc2, parseRate('25/m'), Array(5).fill(1))));
  assert.equal(res.reduce((n, x) => n + x.admitted, 0), 25);
});
