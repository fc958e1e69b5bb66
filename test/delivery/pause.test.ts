// Error-burst pause (DECISIONS "Failure"): a sending whose transport keeps answering errors is
// paused instead of failing its recipients; Resume Sending lets it go on; a pause not resumed
// within the timeout fails the sending.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { schedulerTick } from '../../src/delivery/scheduler.ts';
import { registerTransportFactory } from '../../src/transports/registry.ts';
import type { SendResult } from '../../src/transports/transport.ts';
import type { TestClub } from '../helpers.ts';
import { SMS_CHANNEL, ScriptedTransport, createMessage, dispatchesOf, insertSmsMembers, showSending, startDeliveryApp, waitFor } from './helpers.ts';

const ctx = await startDeliveryApp();
const everyone = { type: 'inline', conditions: [{ condition_group: 'member_properties', field: 'city', operator: 'match', value: 'Oslo' }] };
const HOUR = 3_600_000;

// The clubs' SMS transport, found through the registry like a configured provider would be.
const transports = new Map<number, ScriptedTransport>();
const unregister = registerTransportFactory((club, channel) => (channel === 'sms' ? (transports.get(club.id) ?? null) : null));
after(() => unregister());

/** A transport whose answer the test switches: 'down' answers every message retryable. */
function switchable() {
  const state = { mode: 'down' as 'down' | 'up' };
  const t = new ScriptedTransport((m): SendResult =>
    state.mode === 'down' ? { status: 'retryable', error: 'provider unavailable (503)' } : { status: 'sent', providerId: `p-${m.dispatchId}` },
  );
  return { t, state };
}

/**
 * One scheduler tick at `now` that really ran: on PostgreSQL the test files share a database and
 * another file's tick may hold the scheduler lock for a moment.
 */
async function tick(now: () => Date) {
  return waitFor('the scheduler lock', async () => {
    const r = await schedulerTick(ctx.db, ctx.engine.settings, now);
    return r.ran ? r : null;
  });
}

async function setup(count: number, t: ScriptedTransport) {
  const c = await ctx.club();
  transports.set(c.club.id, t);
  await insertSmsMembers(ctx.db, c.club.id, count);
  const { sendingId } = await createMessage(c, 'generic', { channels: [SMS_CHANNEL()], sending: { schedule: { type: 'immediate' }, audience: everyone } });
  await tick(() => new Date());
  assert.equal((await ctx.engine.prepareOne())?.status, 'prepared');
  return { c, sendingId: sendingId! };
}

const resume = (c: TestClub, id: number, service = 'generic') => c.request('PUT', `/v1/messages/${service}/sendings/${id}/resume`);
const sendingRow = async (id: number) =>
  (await ctx.db.query<any>('SELECT status, paused, paused_at, pause_reason, error, failed_at, dispatches_closed_at FROM sendings WHERE id = $1', [id])).rows[0];

/** Batches of 20, one at a time, engine clock `offsetMs` ahead; restored afterwards. */
async function withEngine<T>(offsetMs: number, fn: () => Promise<T>): Promise<T> {
  const saved = { batch: ctx.engine.settings.batchSize, conc: ctx.engine.settings.concurrency, clock: ctx.engine.clock };
  ctx.engine.settings.batchSize = 20;
  ctx.engine.settings.concurrency = 1;
  ctx.engine.clock = () => new Date(Date.now() + offsetMs);
  try {
    return await fn();
  } finally {
    ctx.engine.settings.batchSize = saved.batch;
    ctx.engine.settings.concurrency = saved.conc;
    ctx.engine.clock = saved.clock;
  }
}

test('defaults: 50 % errors over at least 50 results in 60 s; 24 h to resume', () => {
  const s = ctx.engine.settings;
  assert.deepEqual([s.pauseErrorRatio, s.pauseMinSamples, s.pauseWindowMs, s.pauseTimeoutMs], [0.5, 50, 60_000, 24 * HOUR]);
});

test('a burst of transport errors pauses the sending; resumed, everything is sent once', async () => {
  const { t, state } = switchable();
  const { c, sendingId } = await setup(100, t);

  // 20 + 20 errors stay under the 50 samples; the third batch crosses the threshold.
  await withEngine(0, () => ctx.engine.drain());
  assert.deepEqual(t.calls.map((call) => call.ids.length), [20, 20, 20]);
  let row = await sendingRow(sendingId);
  assert.equal(row.status, 'transmitting');
  assert.equal(row.paused, true);
  assert.ok(row.paused_at instanceof Date);
  assert.equal(row.pause_reason, 'transport errors reached 50% of at least 50 results within 60 s (last: provider unavailable (503))');
  let ds = await dispatchesOf(ctx.db, sendingId);
  assert.equal(ds.length, 100);
  const tried = new Set(t.sentIds);
  assert.equal(tried.size, 60);
  for (const d of ds) {
    // Nothing failed: the tried ones wait for their retry, the others were never claimed.
    assert.equal(d.status, 'pending');
    if (tried.has(d.id)) {
      assert.equal(d.attempts, 1);
      assert.equal(d.error, 'provider unavailable (503)');
      assert.ok(d.next_attempt_at instanceof Date);
    } else {
      assert.equal(d.attempts, 0);
      assert.equal(d.error, null);
    }
  }
  let shown = await showSending(c, 'generic', sendingId);
  assert.deepEqual([shown.status, shown.paused, shown.status_reason], ['transmitting', true, 'error_burst']);
  assert.deepEqual([shown.stats.pending, shown.stats.sent, shown.stats.failed], [100, 0, 0]);

  // While paused, nothing more reaches the transport, even with every retry due; a batch
  // claimed anyway (directly) is put back without using an attempt.
  await withEngine(HOUR, async () => {
    await ctx.engine.drain();
    assert.equal(await ctx.engine.transmit(), false);
    assert.equal(await ctx.engine.transmitter.batch(sendingId), 20);
  });
  assert.equal(t.calls.length, 3);
  ds = await dispatchesOf(ctx.db, sendingId);
  assert.ok(ds.every((d) => d.status === 'pending'));
  assert.equal(ds.reduce((n, d) => n + d.attempts, 0), 60);
  assert.equal((await sendingRow(sendingId)).paused, true);

  // The provider is back; the club resumes.
  state.mode = 'up';
  const res = await resume(c, sendingId);
  assert.equal(res.status, 200, res.text);
  shown = await showSending(c, 'generic', sendingId);
  assert.deepEqual(res.body, { sending: shown });
  assert.deepEqual([shown.status, shown.paused, shown.status_reason], ['transmitting', false, null]);
  row = await sendingRow(sendingId);
  assert.equal(row.paused, false);
  assert.ok(row.paused_at instanceof Date, 'the pause stays on record');

  await withEngine(HOUR, () => ctx.engine.drain());
  const handed = t.calls.slice(3).flatMap((call) => call.ids);
  assert.deepEqual([...handed].sort((a, b) => a - b), ds.map((d) => d.id), 'every dispatch handed over once after the resume');
  ds = await dispatchesOf(ctx.db, sendingId);
  for (const d of ds) {
    assert.equal(d.status, 'sent');
    assert.equal(d.provider_id, `p-${d.id}`);
    assert.equal(d.attempts, tried.has(d.id) ? 2 : 1);
  }
  shown = await showSending(c, 'generic', sendingId);
  assert.equal(shown.status, 'transmitted');
  assert.deepEqual([shown.stats.pending, shown.stats.sent, shown.stats.failed], [0, 100, 0]);
  row = await sendingRow(sendingId);
  assert.deepEqual([row.status, row.paused, row.error], ['transmitted', false, null]);

  // Not paused any more: 405 naming the status.
  const again = await resume(c, sendingId);
  assert.equal(again.status, 405);
  assert.deepEqual(again.body, { error: 'Sending is transmitted and not paused' });
});

test('errors under the ratio do not pause', async () => {
  // A third of the messages fail on their first attempt: 33 % < 50 %.
  const t = new ScriptedTransport((m, attempt): SendResult =>
    m.dispatchId % 3 === 0 && attempt === 1 ? { status: 'retryable', error: 'busy' } : { status: 'sent', providerId: `p-${m.dispatchId}` },
  );
  const { c, sendingId } = await setup(120, t);
  await withEngine(0, () => ctx.engine.drain());
  assert.equal((await sendingRow(sendingId)).paused, false);
  await withEngine(HOUR, () => ctx.engine.drain());
  const row = await sendingRow(sendingId);
  assert.deepEqual([row.status, row.paused, row.paused_at], ['transmitted', false, null]);
  assert.ok((await dispatchesOf(ctx.db, sendingId)).every((d) => d.status === 'sent'));
  assert.equal((await showSending(c, 'generic', sendingId)).stats.sent, 120);
});

test('resume refuses a sending that is not paused (405), another club’s sending (404), and needs its permit', async () => {
  const { t } = switchable();
  const { c, sendingId } = await setup(10, t);
  // Prepared, then transmitting, never paused (10 results are under the 50 samples).
  let res = await resume(c, sendingId);
  assert.equal(res.status, 405);
  assert.deepEqual(res.body, { error: 'Sending is prepared and not paused' });
  await withEngine(0, () => ctx.engine.drain());
  assert.deepEqual(await sendingRow(sendingId).then((r) => [r.status, r.paused]), ['transmitting', false]);
  res = await resume(c, sendingId);
  assert.equal(res.status, 405);
  assert.deepEqual(res.body, { error: 'Sending is transmitting and not paused' });

  // Paused but no longer transmitting (e.g. the seeded example): cannot be resumed either.
  await ctx.db.query(`UPDATE sendings SET status = 'cancelled', paused = true WHERE id = $1`, [sendingId]);
  res = await resume(c, sendingId);
  assert.equal(res.status, 405);
  assert.deepEqual(res.body, { error: 'Sending is cancelled and cannot be resumed' });
  assert.equal((await sendingRow(sendingId)).paused, true, 'unchanged');

  const other = await ctx.club();
  res = await resume(other, sendingId);
  assert.equal(res.status, 404);
  assert.deepEqual(res.body, { error: 'Sending not found' });
  res = await resume(c, sendingId, 'campaigns_nonexistent');
  assert.equal(res.status, 404);
  res = await resume(c, 999_999_999);
  assert.equal(res.status, 404);
  assert.deepEqual(res.body, { error: 'Sending not found' });

  const token = await c.tokenWith(ctx.permits.filter((p) => p !== 'Messages:Api:Sendings:Resume'));
  res = await c.request('PUT', `/v1/messages/generic/sendings/${sendingId}/resume`, { token });
  assert.equal(res.status, 403);
  assert.deepEqual(res.body, { error: 'Not authorized: permit Messages:Api:Sendings:Resume required' });
});

test('a pause not resumed within 24 hours fails the sending and its pending dispatches', async () => {
  const { t } = switchable();
  const { c, sendingId } = await setup(80, t);
  await withEngine(0, () => ctx.engine.drain());
  const paused = await sendingRow(sendingId);
  assert.deepEqual([paused.status, paused.paused], ['transmitting', true]);
  assert.equal(t.calls.length, 3);
  const pausedAt = (paused.paused_at as Date).getTime();

  // One minute short of the timeout: still paused.
  ctx.engine.clock = () => new Date(pausedAt + 24 * HOUR - 60_000);
  try {
    assert.deepEqual((await tick(ctx.engine.clock)).pauseExpired, []);
    assert.deepEqual(await sendingRow(sendingId).then((r) => [r.status, r.paused]), ['transmitting', true]);
    ctx.engine.clock = () => new Date(pausedAt + 24 * HOUR + 1000);
    assert.deepEqual((await tick(ctx.engine.clock)).pauseExpired, [sendingId]);
    const row = await sendingRow(sendingId);
    assert.equal(row.status, 'failed');
    assert.equal(row.paused, false);
    assert.equal(row.error, 'paused and not resumed within 24 hours');
    assert.equal(row.failed_at.getTime(), pausedAt + 24 * HOUR + 1000);
    const ds = await dispatchesOf(ctx.db, sendingId);
    assert.equal(ds.length, 80);
    for (const d of ds) {
      assert.equal(d.status, 'failed');
      assert.equal(d.error, 'paused and not resumed');
      assert.equal(d.failed_at.getTime(), pausedAt + 24 * HOUR + 1000);
    }
    await ctx.engine.drain();
    assert.ok((await sendingRow(sendingId)).dispatches_closed_at instanceof Date);
  } finally {
    ctx.engine.clock = () => new Date();
  }
  assert.equal(t.calls.length, 3, 'nothing handed over after the pause');
  const shown = await showSending(c, 'generic', sendingId);
  assert.deepEqual([shown.status, shown.paused, shown.status_reason], ['failed', false, 'paused_too_long']);
  assert.deepEqual([shown.stats.pending, shown.stats.failed], [0, 80]);
  const res = await resume(c, sendingId);
  assert.equal(res.status, 405);
  assert.deepEqual(res.body, { error: 'Sending is failed and not paused' });
});
