// The sending lifecycle of §9: the status table (every status × update / cancel), draft ↔
// scheduled through updates, scheduled_at, and the aggregated message status of §9.4 for every mix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp } from '../helpers.ts';
import { aggregateStatus } from '../../src/messaging/messages.ts';
import { SENDING_STATUSES, type SendingStatus } from '../../src/messaging/schemas.ts';
import { createMessage, createSending, setStatus } from './support.ts';

const ctx = await startTestApp();

const EDITABLE = new Set(['draft', 'scheduled']);
const CANCELLABLE = new Set(['preparing', 'prepared', 'transmitting']);

test('§9.1: every status × Update Sending', async () => {
  const c = await ctx.newClub();
  const m = await createMessage(c);
  for (const status of SENDING_STATUSES) {
    const s = await createSending(c, m.id);
    await setStatus(ctx, s.id, status);
    const res = await c.request('PUT', `/v1/messages/generic/sendings/${s.id}`, { body: { sending: { properties: { x: 1 } } } });
    if (EDITABLE.has(status)) {
      assert.equal(res.status, 200, `${status}: ${JSON.stringify(res.body)}`);
      assert.deepEqual(res.body.sending.properties, { x: 1 });
    } else {
      assert.equal(res.status, 405, status);
      assert.deepEqual(res.body, { error: `Sending is ${status} and can no longer be updated` });
    }
  }
});

test('§9.1: every status × Cancel Sending', async () => {
  const c = await ctx.newClub();
  const m = await createMessage(c);
  for (const status of SENDING_STATUSES) {
    const s = await createSending(c, m.id);
    await setStatus(ctx, s.id, status);
    const res = await c.request('PUT', `/v1/messages/generic/sendings/${s.id}/cancel`);
    if (CANCELLABLE.has(status)) {
      assert.equal(res.status, 200, status);
      // A transmitting sending without a pending dispatch has nothing left to stop: it is not labelled cancelled.
      const expected = status === 'transmitting' ? ['transmitting', 'cancel_too_late', 0] : ['cancelled', 'cancelled_by_user', 0];
      assert.deepEqual([res.body.sending.status, res.body.sending.status_reason, res.body.sending.cancelled_dispatches_count], expected, status);
    } else {
      assert.equal(res.status, 405, status);
      assert.deepEqual(res.body, { error: `Sending is ${status} and cannot be cancelled` });
    }
  }
});

test('cancel turns the pending dispatches into cancelled ones and leaves the others', async () => {
  const c = await ctx.newClub();
  const m = await createMessage(c);
  const s = await createSending(c, m.id, { schedule: { type: 'immediate' } });
  await setStatus(ctx, s.id, 'transmitting');
  for (const [key, status] of [['a', 'pending'], ['b', 'sent'], ['c', 'pending']]) {
    await ctx.db.query(`INSERT INTO dispatches (loyalty_club_id, sending_id, recipient_key, status, channel, email) VALUES ($1, $2, $3, $4, 'email', $3)`, [c.club.id, s.id, key, status]);
  }
  const res = await c.request('PUT', `/v1/messages/generic/sendings/${s.id}/cancel`);
  assert.equal(res.status, 200);
  assert.equal(res.body.sending.stats.cancelled, 2);
  assert.equal(res.body.sending.stats.sent, 1);
  assert.equal(res.body.sending.stats.pending, 0);
  assert.deepEqual([res.body.sending.status, res.body.sending.cancelled_dispatches_count], ['cancelled', 2]);
});

test('draft ↔ scheduled through updates; scheduled_at follows the schedule', async () => {
  const c = await ctx.newClub();
  const m = await createMessage(c);
  // no schedule → draft
  let s = await createSending(c, m.id);
  assert.equal(s.status, 'draft');
  assert.equal(s.draft, false);
  assert.equal(s.scheduled_at, null);
  // draft: true wins over a schedule
  s = await createSending(c, m.id, { draft: true, schedule: { type: 'absolute', at: '2031-01-01T10:00:00.000Z' } });
  assert.equal(s.status, 'draft');
  assert.equal(s.scheduled_at, '2031-01-01T10:00:00.000Z');
  let res = await c.request('PUT', `/v1/messages/generic/sendings/${s.id}`, { body: { sending: { draft: false } } });
  assert.equal(res.status, 200);
  assert.equal(res.body.sending.status, 'scheduled');
  assert.equal(res.body.sending.scheduled_at, '2031-01-01T10:00:00.000Z');
  // back to draft
  res = await c.request('PUT', `/v1/messages/generic/sendings/${s.id}`, { body: { sending: { draft: true } } });
  assert.equal(res.body.sending.status, 'draft');
  // relative schedule is counted from the update
  const before = Date.now();
  res = await c.request('PUT', `/v1/messages/generic/sendings/${s.id}`, { body: { sending: { draft: false, schedule: { type: 'relative', in: 'PT5M' } } } });
  assert.equal(res.body.sending.status, 'scheduled');
  const delta = Date.parse(res.body.sending.scheduled_at) - before;
  assert.ok(delta >= 300_000 - 1000 && delta < 330_000, String(delta));
  // removing the schedule makes it a draft again
  res = await c.request('PUT', `/v1/messages/generic/sendings/${s.id}`, { body: { sending: { schedule: null } } });
  assert.equal(res.body.sending.status, 'draft');
  assert.equal(res.body.sending.scheduled_at, null);
});

test('relative schedule grammar of DECISIONS', async () => {
  const c = await ctx.newClub();
  const m = await createMessage(c);
  for (const ok of ['1 minute', '5 minutes', '2 hours', '3 days', '1 week', '2 weeks', '5 months', 'PT5M', 'P1D', 'P1DT2H', 'P2W', '0 minutes']) {
    const res = await c.request('POST', `/v1/messages/generic/${m.id}/sendings`, { body: { sending: { schedule: { type: 'relative', in: ok }, recipients: [{ msisdn: '4790000001' }] } } });
    assert.equal(res.status, 200, `${ok}: ${JSON.stringify(res.body)}`);
  }
  for (const bad of ['5', 'five minutes', '5 fortnights', 'P', 'PT', '-5 minutes', '5 minutes ago']) {
    const res = await c.request('POST', `/v1/messages/generic/${m.id}/sendings`, { body: { sending: { schedule: { type: 'relative', in: bad }, recipients: [{ msisdn: '4790000001' }] } } });
    assert.equal(res.status, 422, bad);
    assert.equal(res.body.details.sending.schedule.in[0].error, 'invalid_format', bad);
  }
  const res = await c.request('POST', `/v1/messages/generic/${m.id}/sendings`, { body: { sending: { schedule: { type: 'relative', in: '999999 weeks' }, recipients: [{ msisdn: '4790000001' }] } } });
  assert.equal(res.status, 422);
  assert.equal(res.body.details.sending.schedule.in[0].error, 'less_or_equal_to');
});

test('§9.4: aggregated sendings_status for no sending, every single status and every pair', async () => {
  assert.equal(aggregateStatus([]), 'draft');
  const c = await ctx.newClub();
  const m = await createMessage(c);
  const show = async () => (await c.request('GET', `/v1/messages/generic/${m.id}`)).body.message;
  let msg = await show();
  assert.equal(msg.sendings_status, 'draft');
  assert.equal(msg.sendings_count, 0);
  assert.equal(msg.latest_sending, null);

  const a = await createSending(c, m.id);
  for (const s1 of SENDING_STATUSES) {
    await setStatus(ctx, a.id, s1);
    msg = await show();
    assert.equal(msg.sendings_status, aggregateStatus([s1]), s1);
  }
  const b = await createSending(c, m.id);
  const seen = new Set<string>();
  for (const s1 of SENDING_STATUSES) {
    for (const s2 of SENDING_STATUSES) {
      const key = [s1, s2].sort().join('+');
      if (seen.has(key)) continue;
      seen.add(key);
      await setStatus(ctx, a.id, s1);
      await setStatus(ctx, b.id, s2);
      msg = await show();
      const expected = aggregateStatus([s1, s2] as SendingStatus[]);
      assert.equal(msg.sendings_status, expected, key);
      assert.equal(msg.sendings_count, 2);
      assert.equal(msg.latest_sending.id, b.id);
      assert.equal(msg.latest_sending.status, s2);
      // the list filter agrees with the shown status
      const list = await c.request('GET', `/v1/messages/generic?sendings_status=${expected}`);
      assert.ok(list.body.messages.some((x: any) => x.id === m.id), key);
    }
  }
  assert.equal(seen.size, 45);
});

test('§9.4 rules spelled out', () => {
  const finished: SendingStatus[] = ['transmitted', 'cancelled', 'failed', 'skipped'];
  assert.equal(aggregateStatus(['draft', 'draft']), 'draft');
  assert.equal(aggregateStatus(finished), 'finished');
  assert.equal(aggregateStatus(['draft', 'transmitted']), 'scheduled');
  for (const s of ['scheduled', 'preparing', 'prepared', 'transmitting'] as SendingStatus[]) assert.equal(aggregateStatus([s, ...finished]), 'scheduled');
});

test('a message cannot be deleted or updated while a sending executes; otherwise its sendings go with it', async () => {
  const c = await ctx.newClub();
  const m = await createMessage(c);
  const s = await createSending(c, m.id, { schedule: { type: 'immediate' } });
  for (const status of SENDING_STATUSES) {
    await setStatus(ctx, s.id, status);
    const upd = await c.request('PUT', `/v1/messages/generic/${m.id}`, { body: { message: { name: 'x' } } });
    if (['preparing', 'prepared', 'transmitting'].includes(status)) {
      assert.equal(upd.status, 405, status);
      assert.deepEqual(upd.body, { error: `Message has a ${status} sending and cannot be updated` });
      const del = await c.request('DELETE', `/v1/messages/generic/${m.id}`);
      assert.equal(del.status, 405, status);
      assert.deepEqual(del.body, { error: `Message has a ${status} sending and cannot be deleted` });
    } else {
      assert.equal(upd.status, 200, status);
    }
  }
  await setStatus(ctx, s.id, 'transmitted');
  const del = await c.request('DELETE', `/v1/messages/generic/${m.id}`);
  assert.equal(del.status, 200);
  assert.equal(del.body.message.id, m.id);
  assert.equal((await c.request('GET', `/v1/messages/generic/${m.id}`)).status, 404);
  assert.equal((await c.request('GET', `/v1/messages/generic/sendings/${s.id}`)).status, 404);
});

test('§9.4: every mix of sending statuses (all 511 non-empty sets) through the list', async () => {
  const c = await ctx.newClub();
  const expected = new Map<string, string>();
  for (let mask = 1; mask < 1 << SENDING_STATUSES.length; mask++) {
    const set = SENDING_STATUSES.filter((_, i) => mask & (1 << i));
    const name = set.join('+');
    expected.set(name, aggregateStatus(set));
    const { rows } = await ctx.db.query<{ id: number }>(
      `INSERT INTO messages (loyalty_club_id, service, name, marketing) VALUES ($1, 'generic', $2, false) RETURNING id`,
      [c.club.id, name],
    );
    await ctx.db.query(
      `INSERT INTO sendings (loyalty_club_id, message_id, status) SELECT $1, $2, s FROM unnest($3::text[]) AS s`,
      [c.club.id, rows[0].id, set],
    );
  }
  let seen = 0;
  for (let page = 1; page <= 6; page++) {
    const res = await c.request('GET', `/v1/messages/generic?per_page=100&page_no=${page}`);
    assert.equal(res.status, 200);
    for (const m of res.body.messages) {
      assert.equal(m.sendings_status, expected.get(m.name), m.name);
      assert.equal(m.sendings_count, m.name.split('+').length);
      seen++;
    }
  }
  assert.equal(seen, 511);
  // and the filter partitions them the same way
  for (const status of ['draft', 'scheduled', 'finished']) {
    const res = await c.request('GET', `/v1/messages/generic?per_page=1&sendings_status=${status}`);
    assert.equal(res.body.pagination_info.total_count, [...expected.values()].filter((s) => s === status).length, status);
  }
});
