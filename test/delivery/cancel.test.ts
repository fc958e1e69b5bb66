// Cancel at each execution step: nothing is handed to a transport after the cancel returns, and
// every dispatch not handed over ends `cancelled`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { claimPreparation, prepareSending } from '../../src/delivery/prepare.ts';
import { SMS_CHANNEL, ScriptedTransport, createMessage, dispatchesOf, insertSmsMembers, only, showSending, startDeliveryApp, waitFor } from './helpers.ts';

const ctx = await startDeliveryApp();
const everyone = { type: 'inline', conditions: [{ condition_group: 'member_properties', field: 'city', operator: 'match', value: 'Oslo' }] };

async function setup(count: number) {
  const c = await ctx.club();
  await insertSmsMembers(ctx.db, c.club.id, count);
  const { sendingId } = await createMessage(c, 'generic', { channels: [SMS_CHANNEL()], sending: { schedule: { type: 'immediate' }, audience: everyone } });
  return { c, sendingId: sendingId! };
}
const cancel = (c: any, id: number) => c.request('PUT', `/v1/messages/generic/sendings/${id}/cancel`);

test('cancel while preparing: no dispatch is built', async () => {
  const t = new ScriptedTransport();
  ctx.engine.useResolver(only(t));
  const { c, sendingId } = await setup(20);
  await ctx.engine.schedule({ waitForLock: true });
  assert.equal((await showSending(c, 'generic', sendingId)).status, 'preparing');
  // A worker has claimed the preparation when the cancel arrives.
  assert.equal(await claimPreparation(ctx.db, ctx.engine.settings, () => new Date()), sendingId);
  const res = await cancel(c, sendingId);
  assert.equal(res.status, 200, res.text);
  const out = await prepareSending(ctx.db, sendingId, () => new Date());
  assert.equal(out.status, 'cancelled');
  assert.equal(await ctx.engine.prepareOne(), null, 'nothing left to prepare');
  await ctx.engine.drain();
  assert.equal((await dispatchesOf(ctx.db, sendingId)).length, 0);
  assert.equal(t.calls.length, 0);
  assert.equal((await showSending(c, 'generic', sendingId)).status, 'cancelled');
});

test('cancel when prepared: every dispatch ends cancelled, none handed over', async () => {
  const t = new ScriptedTransport();
  ctx.engine.useResolver(only(t));
  const { c, sendingId } = await setup(30);
  await ctx.engine.schedule({ waitForLock: true });
  assert.equal((await ctx.engine.prepareOne())?.status, 'prepared');
  assert.equal((await cancel(c, sendingId)).status, 200);
  await ctx.engine.drain();
  const ds = await dispatchesOf(ctx.db, sendingId);
  assert.equal(ds.length, 30);
  assert.ok(ds.every((d) => d.status === 'cancelled'), JSON.stringify(ds.map((d) => d.status)));
  assert.equal(t.calls.length, 0);
  const s = await showSending(c, 'generic', sendingId);
  assert.equal(s.status, 'cancelled');
  assert.equal(s.stats.cancelled, 30);
  assert.deepEqual([s.status_reason, s.cancelled_dispatches_count], ['cancelled_by_user', 30]);
});

test('cancel while transmitting: stops within one batch; nothing handed over after the cancel returned', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const t = new ScriptedTransport(undefined, null);
  // The second batch stays inside the transport until the cancel has been sent.
  t.hold = async () => {
    if (t.calls.length === 2) await gate;
  };
  ctx.engine.useResolver(only(t));
  const saved = { batch: ctx.engine.settings.batchSize, conc: ctx.engine.settings.concurrency };
  ctx.engine.settings.batchSize = 10;
  ctx.engine.settings.concurrency = 1;
  try {
    const { c, sendingId } = await setup(100);
    await ctx.engine.schedule({ waitForLock: true });
    await ctx.engine.prepareOne();
    let stop = false;
    const loop = (async () => {
      while (!stop) if (!(await ctx.engine.transmit())) await new Promise((r) => setTimeout(r, 10));
    })();
    await waitFor('second batch inside the transport', async () => t.calls.length === 2);
    const cancelling = cancel(c, sendingId);
    await new Promise((r) => setTimeout(r, 300));
    release();
    const res = await cancelling;
    const returnedAt = Date.now();
    assert.equal(res.status, 200, res.text);
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await loop;
    await ctx.engine.drain();

    assert.equal(t.calls.length, 2, 'no batch after the one in flight');
    assert.ok(t.calls.every((call) => call.startedAt < returnedAt));
    const ds = await dispatchesOf(ctx.db, sendingId);
    const sent = ds.filter((d) => d.status === 'sent').map((d) => d.id).sort((a, b) => a - b);
    assert.deepEqual(sent, [...t.sentIds].sort((a, b) => a - b), 'exactly the handed-over dispatches are sent');
    assert.equal(sent.length, 20);
    assert.ok(ds.filter((d) => d.status !== 'sent').every((d) => d.status === 'cancelled'));
    const s = await showSending(c, 'generic', sendingId);
    assert.equal(s.status, 'cancelled');
    assert.equal(s.stats.sent, 20);
    assert.equal(s.stats.cancelled, 80);
    assert.deepEqual([s.status_reason, s.cancelled_dispatches_count], ['cancelled_by_user', 80]);
  } finally {
    ctx.engine.settings.batchSize = saved.batch;
    ctx.engine.settings.concurrency = saved.conc;
  }
});

test('cancelling a finished or scheduled sending is refused (405) and changes nothing', async () => {
  ctx.engine.useResolver(only(new ScriptedTransport()));
  const { c, sendingId } = await setup(3);
  assert.equal((await cancel(c, sendingId)).status, 405, 'scheduled is not cancellable');
  await ctx.engine.drain();
  assert.equal((await showSending(c, 'generic', sendingId)).status, 'transmitted');
  assert.equal((await cancel(c, sendingId)).status, 405);
  assert.ok((await dispatchesOf(ctx.db, sendingId)).every((d) => d.status === 'sent'));
});

test('a cancel that arrives when every dispatch was handed over stops nothing and says so, never `cancelled`', async () => {
  const t = new ScriptedTransport();
  ctx.engine.useResolver(only(t));
  const at = new Date(Date.now() + 60_000);
  ctx.engine.clock = () => at; // injected: the engine's times are this clock's
  try {
    const { c, sendingId } = await setup(25);
    await ctx.engine.schedule({ waitForLock: true });
    assert.equal((await ctx.engine.prepareOne())?.status, 'prepared');
    // One pass hands every dispatch over; the engine has not yet noticed the sending is done.
    assert.equal(await ctx.engine.transmit(), true);
    const before = await showSending(c, 'generic', sendingId);
    assert.deepEqual([before.status, before.stats.sent, before.stats.pending], ['transmitting', 25, 0]);

    const res = await cancel(c, sendingId);
    assert.equal(res.status, 200, res.text);
    const answered = res.body.sending;
    assert.deepEqual(
      [answered.status, answered.status_reason, answered.cancelled_dispatches_count, answered.stats.cancelled, answered.stats.sent],
      ['transmitting', 'cancel_too_late', 0, 0, 25],
    );
    await ctx.engine.drain();
    const after = await showSending(c, 'generic', sendingId);
    assert.deepEqual([after.status, after.status_reason, after.cancelled_dispatches_count], ['transmitted', 'cancel_too_late', 0]);
    assert.equal(after.transmitted_at, at.toISOString());
    assert.equal(t.calls.flatMap((x) => x.ids).length, 25);
  } finally {
    ctx.engine.clock = () => new Date();
  }
});
