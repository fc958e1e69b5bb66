// The scheduler's 20-minute rule (injectable clock), the one-scheduler lock, retries with
// backoff, permanent failures, throttling and dead addresses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { prepareSending } from '../../src/delivery/prepare.ts';
import { schedulerTick } from '../../src/delivery/scheduler.ts';
import { retryDelayMs } from '../../src/delivery/transmit.ts';
import { getReportSink } from '../../src/transports/directory.ts';
import { EMAIL_CHANNEL, SMS_CHANNEL, ScriptedTransport, createMessage, dispatchesOf, insertMembers, insertSmsMembers, only, showSending, startDeliveryApp, waitFor } from './helpers.ts';
import { applyWaitingReports } from '../../src/delivery/reports.ts';

const ctx = await startDeliveryApp();
const everyone = { type: 'inline', conditions: [{ condition_group: 'member_properties', field: 'city', operator: 'match', value: 'Oslo' }] };
const MIN = 60_000;

test('20-minute rule: a sending not started 20 minutes after its time fails and is never sent', async () => {
  const t = new ScriptedTransport();
  ctx.engine.useResolver(only(t));
  const c = await ctx.club();
  await insertSmsMembers(ctx.db, c.club.id, 3);
  const at = new Date(Date.now() + 60 * MIN);
  const late = await createMessage(c, 'generic', { channels: [SMS_CHANNEL()], sending: { schedule: { type: 'absolute', at: at.toISOString() }, audience: everyone } });
  const onTime = await createMessage(c, 'generic', {
    channels: [SMS_CHANNEL()],
    sending: { schedule: { type: 'absolute', at: new Date(at.getTime() + 2 * MIN).toISOString() }, audience: everyone },
  });
  // The system "comes back" 20 minutes and 1 second after the first one's time, 18 minutes after the second's.
  ctx.engine.clock = () => new Date(at.getTime() + 20 * MIN + 1000);
  try {
    await ctx.engine.drain();
  } finally {
    ctx.engine.clock = () => new Date();
  }
  const failed = await showSending(c, 'generic', late.sendingId!);
  assert.deepEqual([failed.status, failed.status_reason], ['failed', 'not_started_in_time']);
  assert.equal(failed.dispatches_count, null); // never executed
  assert.equal((await dispatchesOf(ctx.db, late.sendingId!)).length, 0);
  const sent = await showSending(c, 'generic', onTime.sendingId!);
  assert.equal(sent.status, 'transmitted');
  assert.equal(sent.stats.sent, 3);
  assert.ok(t.calls.flatMap((x) => x.ids).length === 3);
});

test('20-minute rule at the API: a time beyond the window is 422; within it the sending starts at once', async () => {
  ctx.engine.useResolver(only(new ScriptedTransport()));
  const c = await ctx.club();
  await insertSmsMembers(ctx.db, c.club.id, 1);
  const past = (minutes: number) => ({ type: 'absolute', at: new Date(Date.now() - minutes * MIN).toISOString() });
  const refused = await c.request('POST', '/v1/messages/generic', { body: { message: { name: 'Late', channels: [SMS_CHANNEL()], sending: { schedule: past(21), audience: everyone } } } });
  assert.deepEqual([refused.status, refused.body.details], [422, { message: { sending: { schedule: { at: [{ error: 'too_far_in_the_past', options: { max_minutes: 20 } }] } } } }]);
  assert.equal((await ctx.db.query('SELECT 1 FROM messages WHERE loyalty_club_id = $1', [c.club.id])).rows.length, 0, 'nothing stored');

  // A draft may keep an old time; making it a real sending is the moment the rule applies.
  const { messageId, sendingId } = await createMessage(c, 'generic', { channels: [SMS_CHANNEL()], sending: { draft: true, schedule: past(60), audience: everyone } });
  const undraft = await c.request('PUT', `/v1/messages/generic/sendings/${sendingId}`, { body: { sending: { draft: false } } });
  assert.deepEqual([undraft.status, undraft.body.details], [422, { sending: { schedule: { at: [{ error: 'too_far_in_the_past', options: { max_minutes: 20 } }] } } }]);

  const recent = await c.request('POST', `/v1/messages/generic/${messageId}/sendings`, { body: { sending: { schedule: past(10), audience: everyone } } });
  assert.equal(recent.status, 200, recent.text);
  await ctx.engine.drain();
  const shown = await showSending(c, 'generic', recent.body.sending.id);
  assert.deepEqual([shown.status, shown.status_reason, shown.stats.sent], ['transmitted', null, 1]);
});

test('a sending nobody can be reached by is skipped with a reason', async () => {
  ctx.engine.useResolver(only(new ScriptedTransport()));
  const c = await ctx.club();
  const { sendingId } = await createMessage(c, 'generic', { channels: [SMS_CHANNEL()], sending: { schedule: { type: 'immediate' }, audience: everyone } });
  await ctx.engine.drain();
  const shown = await showSending(c, 'generic', sendingId!);
  assert.deepEqual([shown.status, shown.status_reason], ['skipped', 'no_reachable_recipients']);
});

test('one scheduler at a time: a tick finds the lock taken and does nothing', async () => {
  if (ctx.db.kind !== 'postgres') return; // one connection on PGlite: there is no other session to hold it
  const c = await ctx.club();
  await insertSmsMembers(ctx.db, c.club.id, 1);
  const { sendingId } = await createMessage(c, 'generic', { channels: [SMS_CHANNEL()], sending: { schedule: { type: 'immediate' }, audience: everyone } });
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let locked!: () => void;
  const isLocked = new Promise<void>((r) => (locked = r));
  const holder = ctx.db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock(4815162343)');
    locked();
    await held;
  });
  await isLocked;
  const r = await schedulerTick(ctx.db, ctx.engine.settings, () => new Date());
  assert.equal(r.ran, false);
  assert.equal((await showSending(c, 'generic', sendingId!)).status, 'scheduled');
  release();
  await holder;
  assert.deepEqual((await schedulerTick(ctx.db, ctx.engine.settings, () => new Date())).started, [sendingId]);
  await ctx.engine.drain();
});

test('retryable errors retry with backoff up to the limit, then fail; permanent errors fail at once', async () => {
  const saved = { ...ctx.engine.settings };
  ctx.engine.settings.retryBaseMs = 0;
  ctx.engine.settings.maxAttempts = 3;
  try {
    const c = await ctx.club();
    const ids = await insertMembers(ctx.db, c.club.id, [
      { first_name: 'flaky', msisdn: '4793000001', city: 'Oslo' },
      { first_name: 'down', msisdn: '4793000002', city: 'Oslo' },
      { first_name: 'bad', msisdn: '4793000003', city: 'Oslo' },
      { first_name: 'slow', msisdn: '4793000004', city: 'Oslo' },
      { first_name: 'gone', email: 'gone@example.com', city: 'Oslo' },
    ]);
    const t = new ScriptedTransport((m, n) => {
      const who = m.recipient.msisdn ?? m.recipient.email;
      if (who === '4793000001') return n < 3 ? { status: 'retryable', error: 'busy' } : { status: 'sent', providerId: 'ok' };
      if (who === '4793000002') return { status: 'retryable', error: 'connection refused' };
      if (who === '4793000003') return { status: 'permanent', error: 'invalid number' };
      if (who === '4793000004') return n < 4 ? { status: 'retryable', error: 'throttled', retryAfterMs: 0 } : { status: 'sent', providerId: 'late' };
      return { status: 'permanent', error: 'user unknown', gone: true };
    });
    ctx.engine.useResolver(only(t));
    const { sendingId } = await createMessage(c, 'generic', { channels: [SMS_CHANNEL(), EMAIL_CHANNEL()], sending: { schedule: { type: 'immediate' }, audience: everyone } });
    await ctx.engine.drain();
    const byMember = new Map((await dispatchesOf(ctx.db, sendingId!)).map((d) => [d.member_id, d]));
    assert.equal(byMember.get(ids[0]).status, 'sent');
    assert.equal(byMember.get(ids[0]).attempts, 3);
    assert.equal(byMember.get(ids[1]).status, 'failed');
    assert.equal(byMember.get(ids[1]).attempts, 3);
    assert.match(byMember.get(ids[1]).error, /connection refused \(after 3 attempts\)/);
    assert.equal(byMember.get(ids[2]).status, 'failed');
    assert.equal(byMember.get(ids[2]).attempts, 1);
    assert.equal(byMember.get(ids[3]).status, 'sent', 'throttling does not use up attempts');
    assert.equal(byMember.get(ids[3]).attempts, 1);
    assert.equal(byMember.get(ids[4]).status, 'undeliverable');
    const { rows } = await ctx.db.query('SELECT email_status FROM members WHERE id = $1', [ids[4]]);
    assert.equal(rows[0].email_status, 'hard_bounced', 'a dead address is recorded on the member');
    const s = await showSending(c, 'generic', sendingId!);
    assert.equal(s.status, 'transmitted');
    assert.deepEqual([s.stats.sent, s.stats.failed, s.stats.undeliverable], [2, 2, 1]);
  } finally {
    Object.assign(ctx.engine.settings, saved);
  }
});

test('a retry waits its backoff: not claimed before next_attempt_at', async () => {
  const c = await ctx.club();
  await insertSmsMembers(ctx.db, c.club.id, 1);
  const t = new ScriptedTransport((_m, n) => (n === 1 ? { status: 'retryable', error: 'busy' } : { status: 'sent', providerId: 'ok' }));
  ctx.engine.useResolver(only(t));
  const { sendingId } = await createMessage(c, 'generic', { channels: [SMS_CHANNEL()], sending: { schedule: { type: 'immediate' }, audience: everyone } });
  await ctx.engine.drain();
  const [d] = await dispatchesOf(ctx.db, sendingId!);
  assert.equal(d.status, 'pending');
  assert.ok(d.next_attempt_at.getTime() > Date.now(), 'scheduled in the future');
  assert.equal((await showSending(c, 'generic', sendingId!)).status, 'transmitting');
  ctx.engine.clock = () => new Date(Date.now() + 60 * MIN);
  try {
    await ctx.engine.drain();
  } finally {
    ctx.engine.clock = () => new Date();
  }
  assert.equal((await dispatchesOf(ctx.db, sendingId!))[0].status, 'sent');
  assert.equal((await showSending(c, 'generic', sendingId!)).status, 'transmitted');
});

test('backoff doubles per attempt with jitter, capped', () => {
  for (let i = 0; i < 50; i++) {
    const d1 = retryDelayMs(1, 1000, 60_000);
    const d3 = retryDelayMs(3, 1000, 60_000);
    const d20 = retryDelayMs(20, 1000, 60_000);
    assert.ok(d1 >= 500 && d1 <= 1000);
    assert.ok(d3 >= 2000 && d3 <= 4000);
    assert.ok(d20 >= 30_000 && d20 <= 60_000);
  }
});

test('a preparation interrupted after a chunk is completed by the next run, counters right', async () => {
  const c = await ctx.club();
  await insertSmsMembers(ctx.db, c.club.id, 50);
  const { messageId, sendingId } = await createMessage(c, 'generic', {
    channels: [SMS_CHANNEL(), EMAIL_CHANNEL()],
    sending: { schedule: { type: 'immediate' }, audience: everyone, recipients: [{ email: 'x@example.com' }] },
  });
  // A channel change strands the e-mail recipient: it ends in a skipped dispatch.
  const stranded = await c.request('PUT', `/v1/messages/generic/${messageId}`, { body: { message: { channels: [SMS_CHANNEL()] } } });
  assert.equal(stranded.status, 200, stranded.text);
  await ctx.engine.schedule({ waitForLock: true });
  let chunks = 0;
  await assert.rejects(
    prepareSending(ctx.db, sendingId!, () => new Date(), {
      chunkSize: 10,
      parallel: 1,
      heartbeat: async () => {
        if (++chunks === 2) throw new Error('worker died');
      },
    }),
    /worker died/,
  );
  const partial = (await dispatchesOf(ctx.db, sendingId!)).length;
  assert.ok(partial > 1 && partial < 51, `${partial} rows built before the crash`);
  const out = await prepareSending(ctx.db, sendingId!, () => new Date(), { chunkSize: 10 });
  assert.equal(out.status, 'prepared');
  assert.equal(out.membersCount, 50);
  assert.equal(out.dispatchesCount, 50, 'the e-mail recipient has no channel here (sms only)');
  assert.equal(out.skippedCount, 1);
  assert.equal((await dispatchesOf(ctx.db, sendingId!)).length, 51);
  await ctx.engine.drain();
});

test('higher priority first; equal priorities take turns', async () => {
  const saved = { ...ctx.engine.settings };
  ctx.engine.settings.batchSize = 5;
  ctx.engine.settings.concurrency = 1;
  try {
    const t = new ScriptedTransport();
    ctx.engine.useResolver(only(t));
    const c = await ctx.club();
    await insertSmsMembers(ctx.db, c.club.id, 20);
    const make = async (priority: number) =>
      (await createMessage(c, 'generic', { channels: [SMS_CHANNEL()], sending: { schedule: { type: 'immediate' }, audience: everyone, priority } })).sendingId!;
    const low1 = await make(3);
    const low2 = await make(3);
    const high = await make(9);
    await ctx.engine.schedule({ waitForLock: true });
    while (await ctx.engine.prepareOne());
    const owner = new Map<number, number>();
    for (const s of [low1, low2, high]) for (const d of await dispatchesOf(ctx.db, s)) owner.set(d.id, s);
    await ctx.engine.drain();
    const order = t.calls.map((call) => owner.get(call.ids[0]));
    assert.deepEqual(order.slice(0, 4), [high, high, high, high], 'the priority 9 sending goes first');
    const rest = order.slice(4);
    assert.equal(rest.length, 8);
    // the two priority 3 sendings alternate batch by batch
    for (let i = 1; i < rest.length; i++) assert.notEqual(rest[i], rest[i - 1], `turns: ${rest.join(',')}`);
  } finally {
    Object.assign(ctx.engine.settings, saved);
  }
});

test('delivery reports move sent dispatches to delivered / undeliverable by provider id', async () => {
  const t = new ScriptedTransport((m) => ({ status: 'sent', providerId: `prov-${m.dispatchId}` }));
  ctx.engine.useResolver(only(t));
  const c = await ctx.club();
  await insertSmsMembers(ctx.db, c.club.id, 3);
  const { sendingId } = await createMessage(c, 'generic', { channels: [SMS_CHANNEL()], sending: { schedule: { type: 'immediate' }, audience: everyone } });
  await ctx.engine.drain();
  const [a, b, d] = await dispatchesOf(ctx.db, sendingId!);
  const sink = getReportSink()!;
  const at = new Date();
  await sink(c.club.id, [
    { providerId: a.provider_id, status: 'delivered', at },
    { providerId: b.provider_id, status: 'undeliverable', at, error: 'absent subscriber' },
    { providerId: 'unknown', status: 'delivered', at },
  ]);
  await sink(c.club.id + 1_000_000, [{ providerId: d.provider_id, status: 'delivered', at }]); // another club: nothing
  const after = new Map((await dispatchesOf(ctx.db, sendingId!)).map((x) => [x.id, x]));
  assert.equal(after.get(a.id).status, 'delivered');
  assert.equal(after.get(a.id).delivered_at.getTime(), at.getTime());
  assert.equal(after.get(b.id).status, 'undeliverable');
  assert.equal(after.get(b.id).error, 'absent subscriber');
  assert.equal(after.get(d.id).status, 'sent');
  const s = await showSending(c, 'generic', sendingId!);
  assert.deepEqual([s.stats.delivered, s.stats.undeliverable, s.stats.sent], [1, 1, 1]);
});

test('a report that arrives before its dispatch is recorded sent waits and is applied then', async () => {
  const t = new ScriptedTransport((m) => ({ status: 'sent', providerId: `early-${m.dispatchId}` }));
  ctx.engine.useResolver(only(t));
  const c = await ctx.club();
  await insertSmsMembers(ctx.db, c.club.id, 2);
  const { sendingId } = await createMessage(c, 'generic', { channels: [SMS_CHANNEL()], sending: { schedule: { type: 'immediate' }, audience: everyone } });
  await ctx.engine.schedule({ waitForLock: true });
  await ctx.engine.prepareOne();
  const [a, b] = await dispatchesOf(ctx.db, sendingId!);
  // The SMSC's receipt for `a` comes before the engine has handed anything over.
  const at = new Date();
  await getReportSink()!(c.club.id, [{ providerId: `early-${a.id}`, status: 'delivered', at }]);
  const waiting = await ctx.db.query('SELECT provider_id, status FROM delivery_reports_waiting WHERE loyalty_club_id = $1', [c.club.id]);
  assert.deepEqual(waiting.rows, [{ provider_id: `early-${a.id}`, status: 'delivered' }]);
  assert.equal((await dispatchesOf(ctx.db, sendingId!)).find((d) => d.id === a.id).status, 'pending');

  await ctx.engine.drain();
  await applyWaitingReports(ctx.db);
  const after = new Map((await dispatchesOf(ctx.db, sendingId!)).map((x) => [x.id, x]));
  assert.equal(after.get(a.id).status, 'delivered');
  assert.equal(after.get(a.id).delivered_at.getTime(), at.getTime());
  assert.equal(after.get(b.id).status, 'sent');
  assert.equal((await ctx.db.query('SELECT 1 FROM delivery_reports_waiting WHERE loyalty_club_id = $1', [c.club.id])).rowCount, 0);
  // Reports nobody claims are dropped after an hour.
  await getReportSink()!(c.club.id, [{ providerId: 'never-ours', status: 'delivered', at }]);
  await ctx.db.query(`UPDATE delivery_reports_waiting SET received_at = now() - interval '61 minutes' WHERE provider_id = 'never-ours'`);
  await applyWaitingReports(ctx.db);
  assert.equal((await ctx.db.query(`SELECT 1 FROM delivery_reports_waiting WHERE provider_id = 'never-ours'`)).rowCount, 0);
});

test('progress: the sending counters and stats move while it transmits', async () => {
  const saved = { ...ctx.engine.settings };
  ctx.engine.settings.batchSize = 10;
  ctx.engine.settings.concurrency = 1;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const t = new ScriptedTransport();
  t.hold = async () => {
    if (t.calls.length === 3) await gate;
  };
  ctx.engine.useResolver(only(t));
  try {
    const c = await ctx.club();
    await insertSmsMembers(ctx.db, c.club.id, 40);
    const { sendingId } = await createMessage(c, 'generic', { channels: [SMS_CHANNEL()], sending: { schedule: { type: 'immediate' }, audience: everyone } });
    const running = ctx.engine.drain();
    await waitFor('third batch in the transport', async () => t.calls.length === 3);
    const mid = await showSending(c, 'generic', sendingId!);
    assert.equal(mid.status, 'transmitting');
    assert.equal(mid.dispatches_count, 40);
    assert.deepEqual([mid.stats.sent, mid.stats.sending, mid.stats.pending], [20, 10, 10]);
    release();
    await running;
    const end = await showSending(c, 'generic', sendingId!);
    assert.equal(end.status, 'transmitted');
    assert.equal(end.stats.sent, 40);
  } finally {
    release();
    Object.assign(ctx.engine.settings, saved);
  }
});
