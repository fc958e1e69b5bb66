// Cross-club isolation: every id of another club is answered 404, exactly like a missing one,
// whether in the path or referenced from a body.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp } from '../helpers.ts';
import { createCampaign, createMessage, createSending, insertAudience, insertMember, smsChannel } from './support.ts';

const ctx = await startTestApp();

test("another club's records are not found through any path", async () => {
  const a = await ctx.newClub();
  const b = await ctx.newClub();
  const m = await createMessage(a, {}, 'generic');
  const s = await createSending(a, m.id, { schedule: { type: 'immediate' } });
  await ctx.db.query(`UPDATE sendings SET status = 'transmitting' WHERE id = $1`, [s.id]);
  const t = (await a.request('POST', '/v1/messages/templates', { body: { template: { name: 't', type: 'plain', content: { body: 'x' } } } })).body.template;
  const campaign = await createCampaign(a);
  const identity = (await a.request('POST', '/v1/sms_sender_identities', { body: { sms_sender_identity: { type: 'alphanumeric', value: 'Other' } } })).body.sms_sender_identity;

  const probes: Array<[string, string, unknown?]> = [
    ['GET', `/v1/messages/generic/${m.id}`],
    ['PUT', `/v1/messages/generic/${m.id}`, { message: { name: 'x' } }],
    ['PUT', `/v1/messages/generic/${m.id}/duplicate`],
    ['DELETE', `/v1/messages/generic/${m.id}`],
    ['GET', `/v1/messages/generic/${m.id}/sendings`],
    ['POST', `/v1/messages/generic/${m.id}/sendings`, { sending: { recipients: [{ msisdn: '4790000001' }] } }],
    ['GET', `/v1/messages/generic/sendings/${s.id}`],
    ['PUT', `/v1/messages/generic/sendings/${s.id}`, { sending: { properties: {} } }],
    ['PUT', `/v1/messages/generic/sendings/${s.id}/cancel`],
    ['GET', `/v1/messages/generic/sendings/${s.id}/dispatches`],
    ['GET', `/v1/messages/templates/${t.id}`],
    ['PUT', `/v1/messages/templates/${t.id}`, { template: { name: 'y' } }],
    ['DELETE', `/v1/messages/templates/${t.id}`],
    ['GET', `/v1/messages/generic/sendings/${s.id}/dispatches/members`],
    ['GET', `/v1/messages_campaigns/${campaign}`],
    ['PUT', `/v1/messages_campaigns/${campaign}`, { campaign: { name: 'y' } }],
    ['PUT', `/v1/messages_campaigns/${campaign}/archive`],
    ['PUT', `/v1/messages_campaigns/${campaign}/restore`],
    ['PUT', `/v1/messages_campaigns/${campaign}/duplicate`],
    ['DELETE', `/v1/messages_campaigns/${campaign}`],
    ['GET', `/v1/sms_sender_identities/${identity.id}`],
    ['PUT', `/v1/sms_sender_identities/${identity.id}`, { sms_sender_identity: { value: 'Mine' } }],
    ['DELETE', `/v1/sms_sender_identities/${identity.id}`],
  ];
  for (const [method, path, body] of probes) {
    const res = await b.request(method, path, body === undefined ? {} : { body });
    assert.equal(res.status, 404, `${method} ${path}: ${JSON.stringify(res.body)}`);
    assert.match(res.body.error, / not found$/);
  }
  // the same message under another service of its own club is not found either
  assert.equal((await a.request('GET', `/v1/messages/tenants/${m.id}`)).status, 404);
  assert.equal((await a.request('GET', `/v1/messages/tenants/sendings/${s.id}`)).status, 404);
  // and nothing changed for the owner
  assert.equal((await a.request('GET', `/v1/messages/generic/sendings/${s.id}`)).body.sending.status, 'transmitting');
  assert.equal((await b.request('GET', '/v1/messages/generic')).body.messages.length, 0);
  assert.equal((await b.request('GET', '/v1/messages/templates')).body.templates.length, 0);
  assert.equal((await b.request('GET', '/v1/messages_campaigns')).body.campaigns.length, 0);
});

test("references to another club's template, wrapper, audience, campaign or member are refused", async () => {
  const a = await ctx.newClub();
  const b = await ctx.newClub();
  const t = (await a.request('POST', '/v1/messages/templates', { body: { template: { name: 't', type: 'plain', content: { body: 'x' } } } })).body.template;
  const w = (await a.request('POST', '/v1/messages/templates', { body: { template: { name: 'w', type: 'generic', content: { body: '{{ content }}' } } } })).body.template;
  const audience = await insertAudience(ctx, a);
  const campaign = await createCampaign(a);
  const member = await insertMember(ctx, a, { email: 'x@example.com' });

  let res = await b.request('POST', '/v1/messages/generic', { body: { message: { name: 'x', channels: [{ type: 'sms', template: { type: 'reference', id: t.id } }] } } });
  assert.deepEqual(res.body.details, { message: { channels: { 0: { template: { id: [{ error: 'template_does_not_exist' }] } } } } });
  res = await b.request('POST', '/v1/messages/generic', {
    body: { message: { name: 'x', channels: [{ type: 'sms', template: { type: 'inline', definition: { type: 'plain', content: { body: 'x' }, wrapper_id: w.id } } }] } },
  });
  assert.deepEqual(res.body.details, { message: { channels: { 0: { template: { definition: { wrapper_id: [{ error: 'template_does_not_exist' }] } } } } } });
  res = await b.request('POST', '/v1/messages/templates', { body: { template: { name: 't', type: 'plain', content: { body: 'x' }, wrapper_id: w.id } } });
  assert.deepEqual([res.status, res.body.details], [422, { template: { wrapper_id: [{ error: 'template_does_not_exist' }] } }]);
  res = await b.request('POST', '/v1/messages/generic', { body: { message: { name: 'x', channels: [smsChannel()], sending: { audience: { type: 'reference', id: audience } } } } });
  assert.deepEqual([res.status, res.body.details], [422, { message: { sending: { audience: { id: [{ error: 'referenced_audience_must_exist' }] } } } }]);
  res = await b.request('POST', '/v1/messages/campaigns', { body: { message: { name: 'x', campaign_id: campaign, channels: [smsChannel()] } } });
  assert.deepEqual([res.status, res.body.details], [422, { message: { campaign_id: [{ error: 'does_not_exist' }] } }]);
  res = await b.request('POST', '/v1/messages/generic', { body: { message: { name: 'x', channels: [smsChannel()], sending: { recipients: [{ member_id: member }] } } } });
  assert.equal(res.status, 422);
  assert.deepEqual(res.body.details, { message: { sending: { recipients: { '0': { member_id: [{ error: 'does_not_exist' }] } } } } });
  // list filters cannot see across either
  res = await b.request('GET', `/v1/messages/campaigns?campaign_id=${campaign}`);
  assert.equal(res.body.messages.length, 0);
});
