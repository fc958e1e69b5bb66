// Conformance with the JSON examples of messaging-api.md: every request example is accepted, every
// response comes in the documented shape, and the §5.1 Message example round-trips exactly.
// Ids that the examples take from another system (campaign 32, audience 15, member 150) are
// replaced by records of the test club.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp, PRODUCT } from '../helpers.ts';
import { createClientToken } from '../../src/platform/tokens.ts';
import { DEMO_SLUG, seedDemo } from '../../src/seed.ts';
import { findClubBySlug } from '../../src/platform/clubs.ts';
import { seedExampleMessage } from '../../src/messaging/seed.ts';
import {
  assertMessageShape,
  assertSendingShape,
  createCampaign,
  createMessage,
  emailChannel,
  insertAudience,
  insertMember,
  invalid,
  setMemberSchema,
  smsChannel,
} from './support.ts';

const ctx = await startTestApp();

// §5.1, verbatim.
const EXAMPLE_MESSAGE = {
  id: 758131,
  name: 'DD3',
  shorten_urls: true,
  track_in_shortener: false,
  service: 'generic',
  campaign_id: null,
  created_at: '2020-09-15T10:01:09.467Z',
  updated_at: '2020-09-15T10:01:09.467Z',
  channels: [
    {
      id: 55781,
      type: 'sms',
      sender: { type: 'alphanumeric', value: 'Infinity' },
      template: {
        id: 609193,
        wrapper_id: 3491,
        type: 'plain',
        content: { body: 'Hei {{name}}' },
        created_at: '2020-09-15T12:45:08.618Z',
        updated_at: '2020-09-15T12:45:08.618Z',
      },
      created_at: '2020-09-15T12:45:08.625Z',
      updated_at: '2020-09-15T12:45:08.625Z',
    },
  ],
  sendings_status: 'scheduled',
  sendings_count: 3,
  latest_sending: {
    id: 3920,
    status: 'scheduled',
    audience_id: 107103,
    recipients_count: 0,
    dispatches_count: 9513,
    members_count: 9000,
    scheduled_at: '2020-10-15T15:27:02.853Z',
    transmitted_at: '2020-10-15T12:45:08.625Z',
    created_at: '2020-09-15T12:27:02.853Z',
    updated_at: '2020-09-15T12:45:08.625Z',
  },
};

async function demoClubToken() {
  await seedDemo(ctx.db, ctx.permits);
  const club = (await findClubBySlug(ctx.db, DEMO_SLUG))!;
  await seedExampleMessage(ctx.db, club); // no-op when the seed already made it
  const { token } = await createClientToken(ctx.db, { clubId: club.id, product: PRODUCT, permits: ctx.permits });
  return { club, token };
}

test('§5.1: the seeded example message round-trips exactly, key order included', async () => {
  const { token } = await demoClubToken();
  const res = await ctx.fetch('GET', `/v1/messages/generic/${EXAMPLE_MESSAGE.id}`, { slug: DEMO_SLUG, token });
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, { message: EXAMPLE_MESSAGE });
  assert.equal(res.text, JSON.stringify({ message: EXAMPLE_MESSAGE }));
  assertMessageShape(res.body.message);
});

test('§5.6: the sender identity example is served in the documented model', async () => {
  const { token } = await demoClubToken();
  const res = await ctx.fetch('GET', '/v1/sms_sender_identities/280', { slug: DEMO_SLUG, token });
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, {
    sms_sender_identity: { id: 280, type: 'alphanumeric', value: 'Infinity', default: false, created_at: '2022-02-21T09:39:49.155Z', updated_at: '2022-02-21T09:40:27.208Z' },
  });
});

test('§1.5: the invalid-parameters example is produced exactly', async () => {
  const c = await ctx.newClub();
  const res = await c.request('POST', '/v1/messages/generic', {
    body: { message: { name: 'x', campaign_id: 1, channels: [smsChannel(), smsChannel()] } },
  });
  assert.equal(res.status, 422);
  assert.deepEqual(res.body, invalid({ message: { channels: [{ error: 'types_must_be_unique' }], campaign_id: [{ error: 'is_relevant_only_for_campaign_service' }] } }));
});

test('§6.1: the create-message example (SMS, absolute schedule, referenced audience) is accepted', async () => {
  const c = await ctx.newClub();
  const campaign = await createCampaign(c);
  const audience = await insertAudience(ctx, c);
  const res = await c.request('POST', '/v1/messages/campaigns', {
    body: {
      message: {
        name: 'My message',
        shorten_urls: true,
        track_in_shortener: true,
        campaign_id: campaign,
        channels: [
          {
            type: 'sms',
            sender: { type: 'alphanumeric', value: 'Infinity' },
            template: { type: 'inline', definition: { type: 'plain', content: { body: 'Hi {{name}}' } } },
          },
        ],
        // The docs' example time (2020-10-18) is long past: a real sending for it is 422 (too_far_in_the_past), so the year moves.
        sending: { schedule: { type: 'absolute', at: '2040-10-18T10:59:32.340Z' }, audience: { type: 'reference', id: audience } },
      },
    },
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const m = res.body.message;
  assertMessageShape(m);
  assert.equal(m.name, 'My message');
  assert.equal(m.track_in_shortener, true);
  assert.equal(m.campaign_id, campaign);
  assert.equal(m.service, 'campaigns');
  assert.deepEqual(m.channels[0].sender, { type: 'alphanumeric', value: 'Infinity' });
  assert.deepEqual(m.channels[0].template.content, { body: 'Hi {{name}}' });
  assert.equal(m.sendings_status, 'scheduled');
  assert.equal(m.sendings_count, 1);
  assert.equal(m.latest_sending.status, 'scheduled');
  assert.equal(m.latest_sending.audience_id, audience);
  assert.equal(m.latest_sending.scheduled_at, '2040-10-18T10:59:32.340Z');
});

test('§6.1 note: `data` is accepted as the inline template key', async () => {
  const c = await ctx.newClub();
  const m = await createMessage(c, { channels: [{ type: 'sms', template: { type: 'inline', data: { type: 'plain', content: { body: 'Hei' } } } }] });
  assert.deepEqual(m.channels[0].template.content, { body: 'Hei' });
});

test('§6.3 / §13.1: the push create-message example to a member, sent immediately', async () => {
  const c = await ctx.newClub();
  const member = await insertMember(ctx, c, { email: 'piotr@example.com', first_name: 'Piotr' });
  const res = await c.request('POST', '/v1/messages/generic', {
    body: {
      message: {
        name: 'My message',
        channels: [
          {
            type: 'push',
            template: {
              type: 'inline',
              definition: { type: 'push', content: { subject: 'Piotr Świtlicki', body: 'Hi, …', image_url: 'https://cdn-files.dev.placewise.com/files/…' } },
            },
          },
        ],
        sending: { schedule: { type: 'immediate' }, recipients: [{ member_id: member, properties: { first_name: 'Piotr' } }] },
      },
    },
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assertMessageShape(res.body.message);
  assert.deepEqual(res.body.message.channels[0].template.content, { subject: 'Piotr Świtlicki', body: 'Hi, …', image_url: 'https://cdn-files.dev.placewise.com/files/…' });
  assert.equal(res.body.message.latest_sending.status, 'scheduled');
  assert.equal(res.body.message.latest_sending.recipients_count, 1);
});

test('§6.4: the three sending examples are accepted', async () => {
  const c = await ctx.newClub();
  await setMemberSchema(ctx, c, { first_name: { type: 'string' }, name: { type: 'string' } });
  // The example's e-mail recipient needs an e-mail channel (DECISIONS "Recipients").
  const m = await createMessage(c, { channels: [smsChannel(), emailChannel()] });
  const audience = await insertAudience(ctx, c);
  const member = await insertMember(ctx, c, { email: 'p@example.com', first_name: 'Piotr' });

  // inline audience, no schedule → draft
  let res = await c.request('POST', `/v1/messages/generic/${m.id}/sendings`, {
    body: { sending: { audience: { type: 'inline', conditions: [{ condition_group: 'member_properties', field: 'first_name', operator: 'match', value: 'Piotr' }] } } },
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assertSendingShape(res.body.sending);
  assert.equal(res.body.sending.status, 'draft');
  assert.equal(res.body.sending.scheduled_at, null);
  assert.deepEqual(res.body.sending.audience, { type: 'inline', conditions: [{ condition_group: 'member_properties', field: 'first_name', operator: 'match', value: 'Piotr' }] });

  // relative schedule, referenced audience and recipients
  const before = Date.now();
  res = await c.request('POST', `/v1/messages/generic/${m.id}/sendings`, {
    body: {
      sending: {
        schedule: { type: 'relative', in: '2 days' },
        audience: { type: 'reference', id: audience },
        recipients: [
          { member_id: member, properties: { name: 'Piotr' } },
          { email: 'jan@example.com', properties: { name: 'Jan' } },
        ],
      },
    },
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const s = res.body.sending;
  assertSendingShape(s);
  assert.equal(s.status, 'scheduled');
  assert.equal(s.recipients_count, 2);
  assert.equal(s.audience_id, audience);
  const at = Date.parse(s.scheduled_at) - before;
  assert.ok(at >= 2 * 86_400_000 - 1000 && at <= 2 * 86_400_000 + 60_000, `scheduled_at ${s.scheduled_at}`);

  // the docs' own spelling of a stored audience: "inline" with an id
  res = await c.request('POST', `/v1/messages/generic/${m.id}/sendings`, { body: { sending: { audience: { type: 'inline', id: audience } } } });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.deepEqual(res.body.sending.audience, { type: 'reference', id: audience });

  // Create Sending example (§6.4 / §13.10), its condition placeholder filled in
  res = await c.request('POST', `/v1/messages/generic/${m.id}/sendings`, {
    body: {
      sending: {
        draft: false,
        priority: 1,
        channels_preference: ['sms'],
        schedule: { type: 'immediate' },
        audience: { type: 'inline', conditions: [{ condition_group: 'member_properties', field: 'first_name', operator: 'match', value: 'Piotr' }] },
      },
    },
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.sending.priority, 1);
  assert.deepEqual(res.body.sending.channels_preference, ['sms']);
  assert.equal(res.body.sending.status, 'scheduled');
  assert.deepEqual(res.body.sending.schedule, { type: 'immediate' });
});

test('§6.5: the three schedule examples are accepted', async () => {
  const c = await ctx.newClub();
  const m = await createMessage(c);
  for (const schedule of [{ type: 'immediate' }, { type: 'absolute', at: '2040-10-18T10:59:32.340Z' }, { type: 'relative', in: '5 minutes' }]) {
    const res = await c.request('POST', `/v1/messages/generic/${m.id}/sendings`, { body: { sending: { schedule, recipients: [{ msisdn: '4790000001' }] } } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.sending.schedule, schedule);
    assert.equal(res.body.sending.status, 'scheduled');
  }
});

test('§7.1: the plain and email template examples are accepted as standalone templates', async () => {
  const c = await ctx.newClub();
  for (const t of [
    { type: 'plain', content: { body: 'Hei {{name}}' } },
    { type: 'email', content: { subject: 'Welcome!', body: '<b>Hei {{name}}</b>', preheader: 'We welcome you' } },
  ]) {
    const res = await c.request('POST', '/v1/messages/templates', { body: { template: { name: t.type, ...t } } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(Object.keys(res.body.template).sort(), ['content', 'created_at', 'id', 'name', 'type', 'updated_at', 'wrapper_id']);
    assert.deepEqual(res.body.template.content, t.content);
  }
});

test('§13.4: the update-message example is accepted', async () => {
  const c = await ctx.newClub();
  const campaign = await createCampaign(c);
  const m = await createMessage(c, {}, 'campaigns');
  const res = await c.request('PUT', `/v1/messages/campaigns/${m.id}`, {
    body: {
      message: {
        name: 'My Message',
        shorten_urls: true,
        track_in_shortener: true,
        campaign_id: campaign,
        channels: [{ type: 'sms', from_email: 'sender@example.com', from_name: 'Infinity', sender: { type: 'alphanumeric', value: 'INFINITY' } }],
      },
    },
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assertMessageShape(res.body.message);
  assert.equal(res.body.message.name, 'My Message');
  assert.equal(res.body.message.campaign_id, campaign);
  // the channel keeps its id and template; the sender changes
  assert.equal(res.body.message.channels[0].id, m.channels[0].id);
  assert.deepEqual(res.body.message.channels[0].template, m.channels[0].template);
  assert.deepEqual(res.body.message.channels[0].sender, { type: 'alphanumeric', value: 'INFINITY' });
});

test('§13.2: the list envelope and pagination (default and maximum 100)', async () => {
  const c = await ctx.newClub();
  await createMessage(c);
  let res = await c.request('GET', '/v1/messages/generic');
  assert.equal(res.status, 200);
  assert.deepEqual(Object.keys(res.body).sort(), ['messages', 'pagination_info']);
  assert.equal(res.body.pagination_info.per_page, 100);
  assert.equal(res.body.pagination_info.total_count, 1);
  res.body.messages.forEach(assertMessageShape);
  res = await c.request('GET', '/v1/messages/generic?per_page=101');
  assert.equal(res.status, 422);
  assert.deepEqual(res.body, invalid({ per_page: [{ error: 'less_or_equal_to', options: { number: 100 } }] }));
});

test('§6.6: the condition examples (first_name match, members_group_ids any with the array hint)', async () => {
  const c = await ctx.newClub();
  await setMemberSchema(ctx, c, { first_name: { type: 'string' } });
  const m = await createMessage(c);
  const { rows } = await ctx.db.query<{ id: number }>(`INSERT INTO member_groups (loyalty_club_id, name) VALUES ($1, 'VIP') RETURNING id`, [c.club.id]);
  const conditions = [
    { condition_group: 'member_properties', field: 'first_name', operator: 'match', value: 'Piotr' },
    { condition_group: 'member_properties', field: 'members_group_ids', operator: 'any', value: [rows[0].id], type: 'array' },
  ];
  let res = await c.request('POST', `/v1/messages/generic/${m.id}/sendings`, { body: { sending: { audience: { type: 'inline', conditions } } } });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.deepEqual(res.body.sending.audience, { type: 'inline', conditions });
  // a group of another club (or none) is named at the value
  res = await c.request('POST', `/v1/messages/generic/${m.id}/sendings`, {
    body: { sending: { audience: { type: 'inline', conditions: [{ ...conditions[1], value: [rows[0].id + 100000] }] } } },
  });
  assert.equal(res.status, 422);
  assert.deepEqual(res.body.details, { sending: { audience: { conditions: { '0': { value: { '0': [{ error: 'does_not_exist' }] } } } } } });
});
