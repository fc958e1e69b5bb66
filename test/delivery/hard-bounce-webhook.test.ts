// A hard bounce reported by the transport is a member change like any other: the member's e-mail
// channel becomes hard_bounced through the members domain and members-changes webhooks deliver it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

process.env.WEBHOOKS_ALLOW_PRIVATE = '1'; // the receiver below listens on loopback
const { EMAIL_CHANNEL, ScriptedTransport, createMessage, dispatchesOf, insertMembers, only, startDeliveryApp } = await import('./helpers.ts');
const { deliverDueEvents } = await import('../../src/members/webhooks.ts');

const received: any[] = [];
const receiver = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    received.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
    res.end('ok');
  });
});
await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
after(() => new Promise<void>((resolve) => receiver.close(() => resolve())));
const target = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/members`;

const ctx = await startDeliveryApp();

test('a hard bounce marks the member through the members domain and reaches the webhook', async () => {
  const c = await ctx.club();
  const [bouncing, fine] = await insertMembers(ctx.db, c.club.id, [
    { first_name: 'Bo', email: 'gone@example.com', city: 'Oslo' },
    { first_name: 'Fi', email: 'fine@example.com', city: 'Oslo' },
  ]);
  const sub = await c.request('POST', `/v3/${c.club.slug}/members_changes_subscriptions`, { body: { url: target, event_schema_version: 2 } });
  assert.equal(sub.status, 201, sub.text);
  ctx.engine.useResolver(
    only(new ScriptedTransport((m) => (m.recipient.email === 'gone@example.com' ? { status: 'permanent', error: '550 5.1.1 no such user', gone: true } : { status: 'sent', providerId: `p-${m.dispatchId}` }))),
  );
  const everyone = { type: 'inline', conditions: [{ condition_group: 'member_properties', field: 'city', operator: 'match', value: 'Oslo' }] };
  const { sendingId } = await createMessage(c, 'generic', { channels: [EMAIL_CHANNEL()], sending: { schedule: { type: 'immediate' }, audience: everyone } });
  await ctx.engine.drain();
  const statuses = Object.fromEntries((await dispatchesOf(ctx.db, sendingId!)).map((d) => [d.member_id, d.status]));
  assert.deepEqual(statuses, { [bouncing]: 'undeliverable', [fine]: 'sent' });
  const rows = (await ctx.db.query('SELECT id, email_status FROM members WHERE id = ANY($1::bigint[]) ORDER BY id', [[bouncing, fine]])).rows;
  assert.equal(rows[0].email_status, 'hard_bounced');
  assert.notEqual(rows[1].email_status, 'hard_bounced');

  while ((await deliverDueEvents(ctx.db, { allowPrivateTargets: true })) > 0) {
    // until nothing is due
  }
  const events = received.flatMap((b) => b.events ?? [b]);
  const mine = events.filter((e: any) => (e.member?.id ?? e.member_id) === bouncing);
  assert.equal(mine.length, 1, JSON.stringify(received));
  const e = mine[0];
  assert.equal(e.event?.type ?? e.action, 'update');
  assert.equal(e.member.email_status ?? e.member.channels?.email?.status, 'hard_bounced', JSON.stringify(e));
  assert.equal(events.filter((x: any) => (x.member?.id ?? x.member_id) === fine).length, 0, 'nothing changed for the reachable member');
});
