// Shared fixtures of the messaging tests: payload builders, direct status changes (for states only
// the delivery engine reaches) and exact shape checks of the documented models.
import assert from 'node:assert/strict';
import type { TestClub, TestContext } from '../helpers.ts';

export const smsChannel = (body = 'Hei {{name}}', extra: Record<string, unknown> = {}) => ({
  type: 'sms',
  template: { type: 'inline', definition: { type: 'plain', content: { body } } },
  ...extra,
});

export const emailChannel = (extra: Record<string, unknown> = {}) => ({
  type: 'email',
  template: { type: 'inline', definition: { type: 'email', content: { subject: 'Welcome!', body: '<b>Hei {{name}}</b>', preheader: 'We welcome you' } } },
  ...extra,
});

export const pushChannel = () => ({
  type: 'push',
  template: { type: 'inline', definition: { type: 'push', content: { subject: 'Hi', body: 'Hello {{first_name}}', image_url: 'https://cdn.example.com/a.png' } } },
});

export async function createMessage(c: TestClub, message: Record<string, unknown> = {}, service = 'generic') {
  const res = await c.request('POST', `/v1/messages/${service}`, { body: { message: { name: 'Test', channels: [smsChannel()], ...message } } });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.message;
}

export async function createSending(c: TestClub, messageId: number, sending: Record<string, unknown> = {}, service = 'generic') {
  const res = await c.request('POST', `/v1/messages/${service}/${messageId}/sendings`, {
    body: { sending: { recipients: [{ email: 'someone@example.com', msisdn: '4790000009' }], ...sending } },
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.sending;
}

/** Puts a sending into a status only the delivery engine would reach. */
export async function setStatus(ctx: TestContext, sendingId: number, status: string) {
  await ctx.db.query('UPDATE sendings SET status = $2 WHERE id = $1', [sendingId, status]);
}

export async function setMemberSchema(ctx: TestContext, c: TestClub, properties: Record<string, unknown>) {
  const schema = {
    identifiers: ['email', 'msisdn'],
    consents: { sms_marketing: { version: '', required: false, show_in_profile: true, show_at_registration: true } },
    properties: { email: { type: 'string', format: 'email' }, msisdn: { type: 'string', format: 'msisdn' }, ...properties },
    required: [],
  };
  await ctx.db.query('UPDATE loyalty_clubs SET member_schema = $2 WHERE id = $1', [c.club.id, JSON.stringify(schema)]);
}

export async function insertMember(ctx: TestContext, c: TestClub, properties: Record<string, unknown>): Promise<number> {
  const { rows } = await ctx.db.query<{ id: number }>('INSERT INTO members (loyalty_club_id, properties) VALUES ($1, $2) RETURNING id', [c.club.id, JSON.stringify(properties)]);
  return rows[0].id;
}

export async function insertAudience(ctx: TestContext, c: TestClub, conditions: unknown[] = []): Promise<number> {
  const { rows } = await ctx.db.query<{ id: number }>('INSERT INTO audiences (loyalty_club_id, name, conditions) VALUES ($1, $2, $3) RETURNING id', [c.club.id, 'A', JSON.stringify(conditions)]);
  return rows[0].id;
}

export async function createCampaign(c: TestClub, name = 'Spring'): Promise<number> {
  const res = await c.request('POST', '/v1/messages_campaigns', { body: { campaign: { name } } });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.campaign.id;
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const keys = (o: object) => Object.keys(o).sort();

export function assertTemplateShape(t: any) {
  assert.deepEqual(keys(t), ['content', 'created_at', 'id', 'type', 'updated_at', 'wrapper_id']);
  assert.equal(typeof t.id, 'number');
  assert.ok(t.wrapper_id === null || typeof t.wrapper_id === 'number');
  assert.ok(['plain', 'email', 'bee_email', 'push', 'generic'].includes(t.type));
  assert.equal(typeof t.content, 'object');
  assert.match(t.created_at, ISO);
  assert.match(t.updated_at, ISO);
}

export function assertChannelShape(ch: any) {
  const expected = ['created_at', 'id', 'template', 'type', 'updated_at'];
  if (ch.type === 'sms') expected.push('sender');
  if (ch.type === 'email') expected.push('from_email', ...(ch.from_name !== undefined ? ['from_name'] : []));
  assert.deepEqual(keys(ch), expected.sort());
  if (ch.sender) {
    assert.deepEqual(keys(ch.sender), ['type', 'value']);
    assert.ok(['alphanumeric', 'international'].includes(ch.sender.type));
  }
  assertTemplateShape(ch.template);
}

export function assertMessageShape(m: any) {
  assert.deepEqual(keys(m), [
    'campaign_id', 'channels', 'created_at', 'id', 'latest_sending', 'name', 'sendings_count', 'sendings_status',
    'service', 'shorten_urls', 'track_in_shortener', 'updated_at',
  ]);
  assert.equal(typeof m.id, 'number');
  assert.equal(typeof m.name, 'string');
  assert.equal(typeof m.shorten_urls, 'boolean');
  assert.equal(typeof m.track_in_shortener, 'boolean');
  assert.ok(m.campaign_id === null || typeof m.campaign_id === 'number');
  assert.ok(['draft', 'scheduled', 'finished'].includes(m.sendings_status));
  assert.equal(typeof m.sendings_count, 'number');
  assert.match(m.created_at, ISO);
  m.channels.forEach(assertChannelShape);
  if (m.latest_sending !== null) {
    assert.deepEqual(keys(m.latest_sending), [
      'audience_id', 'created_at', 'dispatches_count', 'id', 'members_count', 'recipients_count', 'scheduled_at', 'status', 'transmitted_at', 'updated_at',
    ]);
  }
}

export function assertSendingShape(s: any) {
  // `recipients` on the sending resource, not in lists (List Message Sendings).
  assert.deepEqual(keys(s), [
    'audience', 'audience_id', 'cancelled_dispatches_count', 'channels_preference', 'created_at', 'dispatches_count', 'draft', 'id', 'members_count',
    'message_id', 'paused', 'possible_duplicates', 'priority', 'properties', ...(s.recipients !== undefined ? ['recipients'] : []), 'recipients_count',
    'schedule', 'scheduled_at', 'scheduled_with', 'service', 'stats', 'status', 'status_reason', 'transmitted_at', 'transport_state', 'updated_at',
  ]);
  assert.equal(typeof s.paused, 'boolean');
  assert.ok(s.status_reason === null || typeof s.status_reason === 'string');
  assert.ok(s.transport_state === null || ['down', 'throttled', 'disk_full'].includes(s.transport_state));
  assert.equal(typeof s.possible_duplicates, 'number');
  assert.deepEqual(keys(s.stats), ['cancelled', 'clicks', 'delivered', 'failed', 'opens', 'pending', 'sending', 'sent', 'skipped', 'undeliverable', 'unique_clicks']);
}

export const invalid = (details: unknown) => ({ error: 'Invalid parameters', details });
