// The other messaging resources: standalone templates (copied into channels), wrappers, campaigns,
// sender identities, settings, merge properties, duplicate / list / search of messages, a message's
// sendings and a sending's dispatches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setClubTransport } from '../../src/transports/config.ts';
import { startTestApp } from '../helpers.ts';
import { assertSendingShape, createCampaign, createMessage, createSending, emailChannel, invalid, pushChannel, setMemberSchema, smsChannel } from './support.ts';

const ctx = await startTestApp();

test('standalone templates: CRUD, and a reference copies the definition into the channel', async () => {
  const c = await ctx.newClub();
  let res = await c.request('POST', '/v1/messages/templates', { body: { template: { name: 'Welcome', type: 'email', content: { subject: 'Hi {{first_name}}', body: '<p>Hi</p>' } } } });
  assert.equal(res.status, 200);
  const t = res.body.template;
  assert.deepEqual({ ...t, id: 0, created_at: '', updated_at: '' }, { id: 0, name: 'Welcome', wrapper_id: null, type: 'email', content: { subject: 'Hi {{first_name}}', body: '<p>Hi</p>' }, created_at: '', updated_at: '' });

  res = await c.request('POST', '/v1/messages/generic', { body: { message: { name: 'x', channels: [{ type: 'email', template: { type: 'reference', id: t.id } }] } } });
  assert.equal(res.status, 200);
  const m = res.body.message;
  assert.notEqual(m.channels[0].template.id, t.id);
  assert.deepEqual(m.channels[0].template.content, t.content);

  res = await c.request('PUT', `/v1/messages/templates/${t.id}`, { body: { template: { content: { subject: 'Changed', body: '<p>New</p>' } } } });
  assert.equal(res.status, 200);
  assert.equal(res.body.template.content.subject, 'Changed');
  // the message keeps its copy
  res = await c.request('GET', `/v1/messages/generic/${m.id}`);
  assert.equal(res.body.message.channels[0].template.content.subject, 'Hi {{first_name}}');

  // a referenced template must fit the channel
  res = await c.request('POST', '/v1/messages/generic', { body: { message: { name: 'x', channels: [{ type: 'sms', template: { type: 'reference', id: t.id } }] } } });
  assert.deepEqual(res.body, invalid({ message: { channels: { '0': { template: { id: [{ error: 'template_does_not_match_channel', options: { channel: 'sms' } }] } } } } }));

  // list: only standalone templates, filter by type
  await c.request('POST', '/v1/messages/templates', { body: { template: { name: 'Short', type: 'plain', content: { body: 'x' } } } });
  res = await c.request('GET', '/v1/messages/templates');
  assert.deepEqual(res.body.templates.map((x: any) => x.name), ['Welcome', 'Short']);
  res = await c.request('GET', '/v1/messages/templates?type[]=plain');
  assert.deepEqual(res.body.templates.map((x: any) => x.name), ['Short']);
  res = await c.request('GET', '/v1/messages/templates?search=welc');
  assert.deepEqual(res.body.templates.map((x: any) => x.name), ['Welcome']);

  // validation
  res = await c.request('POST', '/v1/messages/templates', { body: { template: { type: 'push' } } });
  assert.deepEqual(res.body, invalid({ template: { name: [{ error: 'blank' }], content: [{ error: 'blank' }] } }));
  res = await c.request('PUT', `/v1/messages/templates/${t.id}`, { body: { template: { type: 'plain' } } });
  assert.deepEqual(res.body, invalid({ template: { content: [{ error: 'blank' }] } }));
  res = await c.request('PUT', `/v1/messages/templates/${t.id}`, { body: { template: { content: { subject: '{% if %}', body: 'x' } } } });
  assert.equal(res.body.details.template.content.subject[0].error, 'liquid_syntax_error');

  res = await c.request('DELETE', `/v1/messages/templates/${t.id}`);
  assert.equal(res.status, 200);
  assert.equal((await c.request('GET', `/v1/messages/templates/${t.id}`)).status, 404);
  // the copy survives the original
  assert.equal((await c.request('GET', `/v1/messages/generic/${m.id}`)).body.message.channels[0].template.content.subject, 'Hi {{first_name}}');
});

test('campaigns: create, list (archived hidden), show, update, archive, restore, duplicate, destroy', async () => {
  const c = await ctx.newClub();
  let res = await c.request('POST', '/v1/messages_campaigns', { body: { campaign: { name: 'Spring', description: 'Sale', starts_at: '2030-03-01T00:00:00Z', ends_at: '2030-03-31T00:00:00Z' } } });
  assert.equal(res.status, 200);
  const campaign = res.body.campaign;
  assert.deepEqual({ ...campaign, id: 0, created_at: '', updated_at: '' }, {
    id: 0, name: 'Spring', description: 'Sale', starts_at: '2030-03-01T00:00:00.000Z', ends_at: '2030-03-31T00:00:00.000Z',
    archived: false, archived_at: null, messages_count: 0, created_at: '', updated_at: '',
  });
  res = await c.request('POST', '/v1/messages_campaigns', { body: { campaign: { name: 'Bad', starts_at: '2030-03-02T00:00:00Z', ends_at: '2030-03-01T00:00:00Z' } } });
  assert.deepEqual(res.body, invalid({ campaign: { ends_at: [{ error: 'must_be_after_starts_at' }] } }));
  res = await c.request('POST', '/v1/messages_campaigns', { body: { campaign: {} } });
  assert.deepEqual(res.body, invalid({ campaign: { name: [{ error: 'blank' }] } }));

  const m = await createMessage(c, { campaign_id: campaign.id }, 'campaigns');
  res = await c.request('GET', `/v1/messages_campaigns/${campaign.id}`);
  assert.equal(res.body.campaign.messages_count, 1);
  res = await c.request('PUT', `/v1/messages_campaigns/${campaign.id}`, { body: { campaign: { name: 'Spring 2030', description: null } } });
  assert.equal(res.body.campaign.name, 'Spring 2030');
  assert.equal(res.body.campaign.description, null);

  res = await c.request('PUT', `/v1/messages_campaigns/${campaign.id}/restore`);
  assert.deepEqual([res.status, res.body], [405, { error: 'Campaign is not archived' }]);
  res = await c.request('PUT', `/v1/messages_campaigns/${campaign.id}/archive`);
  assert.equal(res.body.campaign.archived, true);
  assert.ok(res.body.campaign.archived_at);
  res = await c.request('PUT', `/v1/messages_campaigns/${campaign.id}/archive`);
  assert.equal(res.status, 405);
  assert.equal((await c.request('GET', '/v1/messages_campaigns')).body.campaigns.length, 0);
  assert.equal((await c.request('GET', '/v1/messages_campaigns?archived=true')).body.campaigns.length, 1);
  // messages of an archived campaign count as archived
  assert.deepEqual((await c.request('GET', '/v1/messages/campaigns?archived=true')).body.messages.map((x: any) => x.id), [m.id]);
  assert.deepEqual((await c.request('GET', '/v1/messages/campaigns?archived=false')).body.messages, []);
  res = await c.request('PUT', `/v1/messages_campaigns/${campaign.id}/restore`);
  assert.equal(res.body.campaign.archived, false);

  res = await c.request('PUT', `/v1/messages_campaigns/${campaign.id}/duplicate`);
  assert.equal(res.body.campaign.name, 'Spring 2030 (copy)');
  assert.equal(res.body.campaign.messages_count, 0);
  const copy = res.body.campaign.id;

  res = await c.request('DELETE', `/v1/messages_campaigns/${campaign.id}`);
  assert.deepEqual([res.status, res.body], [405, { error: 'Campaign has messages and cannot be destroyed' }]);
  res = await c.request('DELETE', `/v1/messages_campaigns/${copy}`);
  assert.equal(res.status, 200);
  assert.equal((await c.request('GET', `/v1/messages_campaigns/${copy}`)).status, 404);
});

test('sms sender identities: CRUD, the default is listed, read-only and not deletable', async () => {
  const c = await ctx.newClub();
  let res = await c.request('GET', '/v1/sms_sender_identities');
  assert.equal(res.status, 200);
  assert.equal(res.body.sms_sender_identities.length, 1);
  const def = res.body.sms_sender_identities[0];
  assert.deepEqual({ type: def.type, value: def.value, default: def.default }, { type: 'alphanumeric', value: 'InfinityMal', default: true });
  res = await c.request('DELETE', `/v1/sms_sender_identities/${def.id}`);
  assert.deepEqual([res.status, res.body], [405, { error: 'The default SMS sender identity cannot be deleted' }]);
  res = await c.request('PUT', `/v1/sms_sender_identities/${def.id}`, { body: { sms_sender_identity: { value: 'Other' } } });
  assert.equal(res.status, 405);

  res = await c.request('POST', '/v1/sms_sender_identities', { body: { sms_sender_identity: { type: 'international', value: '4740769126' } } });
  assert.equal(res.status, 200);
  const id = res.body.sms_sender_identity.id;
  assert.equal(res.body.sms_sender_identity.default, false);
  res = await c.request('POST', '/v1/sms_sender_identities', { body: { sms_sender_identity: { type: 'international', value: '4740769126' } } });
  assert.deepEqual(res.body, invalid({ sms_sender_identity: { value: [{ error: 'taken' }] } }));
  res = await c.request('POST', '/v1/sms_sender_identities', { body: { sms_sender_identity: { type: 'alphanumeric', value: 'TooLongSender' } } });
  assert.deepEqual(res.body, invalid({ sms_sender_identity: { value: [{ error: 'too_long', options: { max_length: 11 } }] } }));
  res = await c.request('POST', '/v1/sms_sender_identities', { body: { sms_sender_identity: { type: 'international', value: 'abc' } } });
  assert.deepEqual(res.body, invalid({ sms_sender_identity: { value: [{ error: 'invalid_msisdn' }] } }));
  res = await c.request('POST', '/v1/sms_sender_identities', { body: { sms_sender_identity: { default: true } } });
  assert.deepEqual(res.body, invalid({ sms_sender_identity: { default: [{ error: 'not_permitted' }] } }));
  res = await c.request('PUT', `/v1/sms_sender_identities/${id}`, { body: { sms_sender_identity: { type: 'alphanumeric', value: 'Shop' } } });
  assert.deepEqual([res.body.sms_sender_identity.type, res.body.sms_sender_identity.value], ['alphanumeric', 'Shop']);
  res = await c.request('DELETE', `/v1/sms_sender_identities/${id}`);
  assert.equal(res.status, 200);
  assert.equal((await c.request('GET', '/v1/sms_sender_identities')).body.sms_sender_identities.length, 1);
});

test('settings and merge properties', async () => {
  const c = await ctx.newClub();
  let res = await c.request('GET', '/v1/messages/settings');
  assert.equal(res.status, 200);
  const outbox = { transport: 'outbox', url: null, rate: null, secondary: null };
  assert.deepEqual(res.body.settings.channels, {
    sms: { sender_type: 'alphanumeric', sender_value: 'InfinityMal' },
    email: { from_name: 'Infinity Mall', from_email: 'news@infinity-mall.example' },
    push: { android_app_id: null, ios_app_id: null },
  });
  assert.deepEqual(res.body.settings.transports, { sms: outbox, email: outbox, push: outbox });
  // A provider account shows with its secrets redacted, never echoed.
  await setClubTransport(ctx.db, c.club.id, { channel: 'sms', url: 'smpp://hei:s3cret-pass@127.0.0.1:2775?window=50', rate: '500/s' });
  await setClubTransport(ctx.db, c.club.id, { channel: 'sms', role: 'secondary', url: 'smpp://backup:other-pass@127.0.0.1:2776' });
  res = await c.request('GET', '/v1/messages/settings');
  assert.deepEqual(res.body.settings.transports.sms, {
    transport: 'smpp',
    url: 'smpp://hei:***@127.0.0.1:2775?window=50',
    rate: '500/s',
    secondary: { transport: 'smpp', url: 'smpp://backup:***@127.0.0.1:2776', rate: null },
  });
  assert.ok(!res.text.includes('s3cret-pass') && !res.text.includes('other-pass'));
  assert.equal(res.body.settings.shortener.enabled, true);
  assert.equal(typeof res.body.settings.shortener.base_url, 'string');
  const bare = await ctx.newClub({ messagingSettings: {} });
  res = await bare.request('GET', '/v1/messages/settings');
  assert.deepEqual(res.body, {
    settings: {
      channels: { sms: null, email: null, push: null },
      transports: { sms: outbox, email: outbox, push: outbox },
      shortener: { enabled: false, base_url: null },
    },
  });

  await setMemberSchema(ctx, c, { first_name: { type: 'string' }, birthday: { type: 'string', format: 'date' }, points: { type: 'integer' } });
  res = await c.request('GET', '/v1/messages/merge_properties');
  assert.deepEqual(res.body, {
    merge_properties: [
      { name: 'member_id', type: 'integer', source: 'standard' },
      { name: 'first_name', type: 'string', source: 'standard' },
      { name: 'last_name', type: 'string', source: 'standard' },
      { name: 'email', type: 'string', source: 'standard' },
      { name: 'msisdn', type: 'string', source: 'standard' },
      { name: 'unsubscribe_url', type: 'string', source: 'standard' },
      { name: 'app_token', type: 'string', source: 'recipient' },
      { name: 'birthday', type: 'string', source: 'member_schema' },
      { name: 'points', type: 'integer', source: 'member_schema' },
      { name: 'member.id', type: 'integer', source: 'member' },
      { name: 'member.msisdn', type: 'string', source: 'member' },
      { name: 'member.email', type: 'string', source: 'member' },
      { name: 'member.app_token', type: 'string', source: 'member' },
      { name: 'member.birthday', type: 'string', source: 'member' },
      { name: 'member.first_name', type: 'string', source: 'member' },
      { name: 'member.points', type: 'integer', source: 'member' },
    ],
  });
});

test('messages: update replaces the channel set, duplicate copies without sendings', async () => {
  const c = await ctx.newClub();
  const m = await createMessage(c, { channels: [smsChannel(), emailChannel()] });
  await createSending(c, m.id);
  let res = await c.request('PUT', `/v1/messages/generic/${m.id}`, { body: { message: { channels: [pushChannel(), { type: 'sms' }] } } });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const updated = res.body.message;
  assert.deepEqual(updated.channels.map((x: any) => x.type), ['push', 'sms']);
  assert.equal(updated.channels[1].id, m.channels[0].id); // same channel row, new position
  assert.deepEqual(updated.channels[1].template, m.channels[0].template);
  const { rows } = await ctx.db.query('SELECT count(*)::int AS n FROM message_templates WHERE id = $1', [m.channels[1].template.id]);
  assert.equal(rows[0].n, 0); // the dropped channel's private template is gone

  res = await c.request('PUT', `/v1/messages/generic/${m.id}/duplicate`);
  assert.equal(res.status, 200);
  const copy = res.body.message;
  assert.equal(copy.name, 'Test (copy)');
  assert.notEqual(copy.id, m.id);
  assert.equal(copy.sendings_count, 0);
  assert.equal(copy.latest_sending, null);
  assert.deepEqual(copy.channels.map((x: any) => [x.type, x.template.content]), updated.channels.map((x: any) => [x.type, x.template.content]));
  assert.ok(copy.channels.every((x: any, i: number) => x.template.id !== updated.channels[i].template.id && x.id !== updated.channels[i].id));
});

test('messages list: filters, search in body and subject, sorting, pagination', async () => {
  const c = await ctx.newClub();
  const campaign = await createCampaign(c);
  const a = await createMessage(c, { name: 'Alpha', channels: [smsChannel('Spring sale today')] }, 'campaigns');
  const b = await createMessage(c, { name: 'Beta', campaign_id: campaign, channels: [emailChannel()] }, 'campaigns');
  const g = await createMessage(c, { name: 'Gamma', channels: [smsChannel('100% off_now')] }, 'campaigns');
  const s = await createSending(c, b.id, { schedule: { type: 'immediate' } }, 'campaigns');
  const ids = async (q: string) => (await c.request('GET', `/v1/messages/campaigns${q}`)).body.messages.map((x: any) => x.id);
  assert.deepEqual(await ids(''), [a.id, b.id, g.id]);
  assert.deepEqual(await ids('?sort_by=name&sort_direction=desc'), [g.id, b.id, a.id]);
  assert.deepEqual(await ids(`?campaign_id=${campaign}`), [b.id]);
  assert.deepEqual(await ids('?sendings_status=scheduled'), [b.id]);
  assert.deepEqual(await ids('?sendings_status=draft'), [a.id, g.id]);
  await ctx.db.query(`UPDATE sendings SET status = 'transmitted' WHERE id = $1`, [s.id]);
  assert.deepEqual(await ids('?sendings_status=finished'), [b.id]);
  assert.deepEqual(await ids('?search=spring'), [a.id]);
  assert.deepEqual(await ids('?search=welcome'), [b.id]); // e-mail subject
  assert.deepEqual(await ids('?search=%25%20off_'), [g.id]); // LIKE characters are literal
  assert.deepEqual(await ids('?search=_'), [g.id]);
  assert.deepEqual(await ids('?archived=false'), [a.id, b.id, g.id]);
  const res = await c.request('GET', '/v1/messages/campaigns?per_page=2&page_no=2');
  assert.deepEqual(res.body.messages.map((x: any) => x.id), [g.id]);
  assert.deepEqual(res.body.pagination_info, {
    total_count: 3, per_page: 2, total_pages: 2, current_page: 2, next_page: null, prev_page: 1, is_first_page: false, is_last_page: true, is_out_of_range: false,
  });
  assert.deepEqual(await ids(''), await ids('?sort_by=created_at'));
  assert.equal((await c.request('GET', '/v1/messages/generic')).body.messages.length, 0);
});

test("a message's sendings and a sending's dispatches", async () => {
  const c = await ctx.newClub();
  await setMemberSchema(ctx, c, {});
  const m = await createMessage(c);
  const s1 = await createSending(c, m.id);
  const s2 = await createSending(c, m.id, { schedule: { type: 'immediate' }, priority: 8, channels_preference: ['sms'], properties: { a: 1 } });
  assertSendingShape(s2);
  assert.deepEqual({ ...s2, id: 0, created_at: '', updated_at: '', scheduled_at: '' }, {
    id: 0, message_id: m.id, service: 'generic', status: 'scheduled', draft: false, priority: 8, channels_preference: ['sms'],
    schedule: { type: 'immediate' }, scheduled_with: { type: 'immediate' }, audience: null, audience_id: null, properties: { a: 1 }, recipients_count: 1, dispatches_count: null, members_count: 0,
    recipients: [{ member_id: null, msisdn: '4790000009', email: 'someone@example.com', app_token: null, properties: {} }],
    stats: { pending: 0, sending: 0, sent: 0, delivered: 0, failed: 0, undeliverable: 0, skipped: 0, cancelled: 0, clicks: 0, unique_clicks: 0, opens: 0 },
    paused: false, status_reason: null, cancelled_dispatches_count: null, transport_state: null, possible_duplicates: 0,
    scheduled_at: '', transmitted_at: null, created_at: '', updated_at: '',
  });
  let res = await c.request('GET', `/v1/messages/generic/${m.id}/sendings`);
  assert.deepEqual(res.body.sendings.map((x: any) => x.id), [s1.id, s2.id]);
  assert.equal(res.body.pagination_info.total_count, 2);
  res = await c.request('GET', `/v1/messages/generic/${m.id}/sendings?sort_by=created_at&sort_direction=desc&per_page=1`);
  assert.deepEqual(res.body.sendings.map((x: any) => x.id), [s2.id]);

  res = await c.request('GET', `/v1/messages/generic/sendings/${s2.id}/dispatches`);
  assert.deepEqual(res.body, { dispatches: [], pagination_info: { total_count: 0, per_page: 100, total_pages: 0, current_page: 1, next_page: null, prev_page: null, is_first_page: true, is_last_page: true, is_out_of_range: false } });
  for (const [key, status] of [['a@example.com', 'delivered'], ['b@example.com', 'failed'], ['c@example.com', 'delivered']]) {
    await ctx.db.query(`INSERT INTO dispatches (loyalty_club_id, sending_id, recipient_key, status, channel, email, attempts) VALUES ($1, $2, $3, $4, 'email', $5, 1)`, [c.club.id, s2.id, `email:${key}`, status, key]);
  }
  res = await c.request('GET', `/v1/messages/generic/sendings/${s2.id}/dispatches?status[]=delivered`);
  assert.deepEqual(res.body.dispatches.map((d: any) => [d.email, d.status]), [['a@example.com', 'delivered'], ['c@example.com', 'delivered']]);
  assert.deepEqual(Object.keys(res.body.dispatches[0]).sort(), [
    'app_token', 'attempts', 'cleaned_at', 'content', 'created_at', 'delivered_at', 'delivery_status', 'email', 'error', 'external_delivery_status', 'failed_at',
    'id', 'member_id', 'msisdn', 'provider_id', 'scheduled_at', 'sending_id', 'skip_reason', 'status', 'transmission_status', 'transmitted_at', 'type', 'updated_at',
  ]);
  res = await c.request('GET', `/v1/messages/generic/sendings/${s2.id}/dispatches?status=failed&per_page=1`);
  assert.equal(res.body.dispatches.length, 1);
  res = await c.request('GET', `/v1/messages/generic/sendings/${s2.id}/dispatches?status[]=lost`);
  assert.equal(res.status, 422);
  res = await c.request('GET', `/v1/messages/generic/sendings/${s2.id}`);
  assert.deepEqual([res.body.sending.stats.delivered, res.body.sending.stats.failed], [2, 1]);
});
