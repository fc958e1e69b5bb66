// Channel choice per recipient (DECISIONS "Channel choice") and marketing-consent filtering
// (DECISIONS "Marketing consent"), as preparation builds the dispatches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EMAIL_CHANNEL, PUSH_CHANNEL, SMS_CHANNEL, createMessage, dispatchesOf, insertMembers, showSending, startDeliveryApp, type MemberSpec } from './helpers.ts';

const ctx = await startDeliveryApp();

const ALL = ['sms_marketing', 'email_marketing', 'push_marketing'];
// name → member, and the channel expected for a marketing message with channels [sms, email, push]
const TABLE: Array<[string, MemberSpec, string | null, string | null]> = [
  ['sms first', { msisdn: '4792000001', email: 'a@example.com', push_token: 'tok-a', consents: ALL }, 'sms', null],
  ['no msisdn → email', { email: 'b@example.com', consents: ALL }, 'email', null],
  ['sms disabled → email', { msisdn: '4792000003', sms_status: 'disabled', email: 'c@example.com', consents: ALL }, 'email', null],
  ['sms verified counts', { msisdn: '4792000004', sms_status: 'verified', consents: ALL }, 'sms', null],
  ['hard bounced e-mail, no msisdn → push', { email: 'e@example.com', email_status: 'hard_bounced', push_token: 'tok-e', consents: ALL }, 'push', null],
  ['no sms consent → email', { msisdn: '4792000006', email: 'f@example.com', consents: ['email_marketing'] }, 'email', null],
  ['push without token → skipped', { consents: ALL }, null, 'unreachable'],
  ['push disabled → skipped', { push_token: 'tok-h', push_status: 'disabled', consents: ALL }, null, 'unreachable'],
  ['reachable, no consent → skipped', { msisdn: '4792000009', email: 'i@example.com', push_token: 'tok-i' }, null, 'no_marketing_consent'],
  ['consent false → skipped', { msisdn: '4792000010' }, null, 'no_marketing_consent'],
];

async function members(clubId: number) {
  const ids = await insertMembers(ctx.db, clubId, TABLE.map(([name, spec]) => ({ first_name: name, city: 'Oslo', ...spec })));
  // an explicit `false` consent is no consent
  await ctx.db.query(`UPDATE members SET consents = '{"sms_marketing": {"status": false}}' WHERE id = $1`, [ids[9]]);
  return ids;
}

const everyone = { type: 'inline', conditions: [{ condition_group: 'member_properties', field: 'city', operator: 'match', value: 'Oslo' }] };

test('marketing message: the first channel the member can be reached on with consent, else skipped with a reason', async () => {
  const c = await ctx.club();
  const ids = await members(c.club.id);
  const { sendingId } = await createMessage(c, 'campaigns', {
    channels: [SMS_CHANNEL(), EMAIL_CHANNEL(), PUSH_CHANNEL()],
    sending: { schedule: { type: 'immediate' }, audience: everyone },
  });
  await ctx.engine.drain();
  const ds = await dispatchesOf(ctx.db, sendingId!);
  const byMember = new Map(ds.map((d) => [d.member_id, d]));
  TABLE.forEach(([name, , channel, reason], i) => {
    const d = byMember.get(ids[i]);
    assert.ok(d, `${name}: a dispatch`);
    assert.equal(d.channel, channel, `${name}: channel`);
    assert.equal(d.status, channel ? 'sent' : 'skipped', `${name}: status`);
    assert.equal(d.skip_reason, reason, `${name}: reason`);
  });
  const s = await showSending(c, 'campaigns', sendingId!);
  assert.equal(s.status, 'transmitted');
  assert.equal(s.members_count, TABLE.filter((t) => t[2]).length); // members whose dispatch was handed over
  assert.equal(s.dispatches_count, TABLE.filter((t) => t[2]).length);
  assert.equal(s.stats.skipped, TABLE.filter((t) => !t[2]).length);
  // the address used is recorded on the dispatch and reached the outbox
  const push = byMember.get(ids[4]);
  assert.equal(push.push_token, 'tok-e');
  const lines = (await ctx.outbox()).filter((l) => l.sending_id === sendingId);
  assert.equal(lines.length, s.dispatches_count);
  assert.ok(lines.some((l) => l.channel === 'push' && l.recipient.pushToken === 'tok-e'));
});

test('channels_preference limits and reorders the candidates', async () => {
  const c = await ctx.club();
  const ids = await members(c.club.id);
  const { sendingId } = await createMessage(c, 'campaigns', {
    channels: [SMS_CHANNEL(), EMAIL_CHANNEL(), PUSH_CHANNEL()],
    sending: { schedule: { type: 'immediate' }, audience: everyone, channels_preference: ['email', 'sms'] },
  });
  await ctx.engine.drain();
  const byMember = new Map((await dispatchesOf(ctx.db, sendingId!)).map((d) => [d.member_id, d]));
  assert.equal(byMember.get(ids[0]).channel, 'email', 'email preferred over sms');
  assert.equal(byMember.get(ids[3]).channel, 'sms', 'sms when no e-mail');
  assert.equal(byMember.get(ids[4]).channel, null, 'push is not a candidate');
  assert.equal(byMember.get(ids[4]).status, 'skipped');
});

test('non-marketing message: no consent needed, reachability still is', async () => {
  const c = await ctx.club();
  const ids = await members(c.club.id);
  const { sendingId } = await createMessage(c, 'generic', {
    channels: [SMS_CHANNEL(), EMAIL_CHANNEL(), PUSH_CHANNEL()],
    sending: { schedule: { type: 'immediate' }, audience: everyone },
  });
  await ctx.engine.drain();
  const byMember = new Map((await dispatchesOf(ctx.db, sendingId!)).map((d) => [d.member_id, d]));
  assert.equal(byMember.get(ids[8]).channel, 'sms', 'no consent needed');
  assert.equal(byMember.get(ids[9]).channel, 'sms');
  assert.equal(byMember.get(ids[6]).status, 'skipped', 'still unreachable');
  assert.equal(byMember.get(ids[6]).skip_reason, 'unreachable');
});

test('inline recipients: members checked like audience members, addresses by the channels they have; one dispatch per recipient', async () => {
  const c = await ctx.club();
  const ids = await members(c.club.id);
  const { sendingId } = await createMessage(c, 'campaigns', {
    channels: [EMAIL_CHANNEL('<p>{{first_name}} {{code}}</p>'), SMS_CHANNEL('{{first_name}} {{code}}')],
    sending: {
      schedule: { type: 'immediate' },
      properties: { code: 'SENDING' },
      audience: { type: 'inline', conditions: [{ condition_group: 'member', field: 'id', operator: 'any', value: [ids[0], ids[1]] }] },
      recipients: [
        { member_id: ids[0], properties: { code: 'MINE' } }, // also in the audience: one dispatch, its own properties
        { member_id: ids[8] }, // no consent
        { msisdn: '4799999999', properties: { first_name: 'Phone' } }, // no e-mail: sms
        { email: 'x@example.com' },
        { email: 'X@example.com' }, // the same address again
        { member_id: ids[2] }, // deleted before the sending starts
      ],
    },
  });
  await ctx.db.query('DELETE FROM members WHERE id = $1', [ids[2]]);
  await ctx.engine.drain();
  const ds = await dispatchesOf(ctx.db, sendingId!);
  const key = new Map(ds.map((d) => [d.recipient_key, d]));
  assert.equal(ds.length, 6);
  assert.equal(key.get(`member:${ids[0]}`).channel, 'email');
  assert.deepEqual(key.get(`member:${ids[0]}`).properties, { code: 'MINE' });
  assert.equal(key.get(`member:${ids[8]}`).skip_reason, 'no_marketing_consent');
  assert.equal(key.get('msisdn:4799999999').channel, 'sms');
  assert.equal(key.get('email:x@example.com').channel, 'email');
  assert.equal(ds.find((d) => d.recipient_key.startsWith('recipient:'))?.skip_reason, 'no_address_for_channels');
  assert.equal(key.get(`member:${ids[1]}`).channel, 'email');
  const s = await showSending(c, 'campaigns', sendingId!);
  assert.equal(s.members_count, 2);
  assert.equal(s.recipients_count, 6);
  assert.equal(s.dispatches_count, 4);
  const lines = (await ctx.outbox()).filter((l) => l.sending_id === sendingId);
  const mine = lines.find((l) => l.recipient.memberId === ids[0])!;
  assert.match((mine.content as any).html, /sms first MINE/, 'recipient > member > sending properties');
  const phone = lines.find((l) => l.recipient.msisdn === '4799999999')!;
  assert.equal((phone.content as any).text, 'Phone SENDING');
});

test('nothing to send → skipped', async () => {
  const c = await ctx.club();
  await members(c.club.id);
  const { sendingId } = await createMessage(c, 'campaigns', {
    channels: [SMS_CHANNEL()],
    sending: { schedule: { type: 'immediate' }, audience: { type: 'inline', conditions: [{ condition_group: 'member_properties', field: 'city', operator: 'match', value: 'Nowhere' }] } },
  });
  await ctx.engine.drain();
  const s = await showSending(c, 'campaigns', sendingId!);
  assert.equal(s.status, 'skipped');
  assert.equal(s.members_count, 0);
  assert.equal(s.dispatches_count, 0);
});

test('a stored audience is resolved at preparation time', async () => {
  const c = await ctx.club();
  const ids = await members(c.club.id);
  const res = await c.request('POST', '/v1/audiences', { body: { audience: { name: 'Oslo', conditions: everyone.conditions } } });
  assert.ok(res.status === 200 || res.status === 201, res.text);
  const audienceId = res.body.audience.id;
  const { sendingId } = await createMessage(c, 'generic', { channels: [SMS_CHANNEL()], sending: { schedule: { type: 'absolute', at: new Date(Date.now() + 60_000).toISOString() }, audience: { type: 'reference', id: audienceId } } });
  // a member who joins before the sending starts is included
  await insertMembers(ctx.db, c.club.id, [{ first_name: 'Late', msisdn: '4792000099', city: 'Oslo' }]);
  ctx.engine.clock = () => new Date(Date.now() + 61_000);
  try {
    await ctx.engine.drain();
  } finally {
    ctx.engine.clock = () => new Date();
  }
  const s = await showSending(c, 'generic', sendingId!);
  assert.equal(s.status, 'transmitted');
  assert.equal(s.dispatches_count, 6); // the five members with a usable msisdn and the late one
  assert.equal(s.members_count, 6);
});
