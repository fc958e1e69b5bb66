// Permits per route, service permits (checked before the body), handler-checked permits
// (priority, marketing override) and the services listing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp } from '../helpers.ts';
import { permitNames } from '../../src/platform/context.ts';
import { createMessage, createSending, smsChannel } from './support.ts';

const ctx = await startTestApp();

const messagingRoutes = () =>
  ctx.app.registeredRoutes.filter((r) => /^\/v1\/(messages|messages_\w+|sms_sender_identities)(\/|$)/.test(r.url) && r.meta?.permit);

const concrete = (url: string, service = 'generic') => url.replace(':service', service).replace(/:\w+/g, '1');

test('every messaging route declares a Messages permit, UserToken, LoyaltyClub', () => {
  const routes = messagingRoutes();
  assert.ok(routes.length >= 36, String(routes.length)); // wrappers became templates
  for (const r of routes) {
    for (const name of permitNames(r.meta!.permit)) assert.match(name, /^Messages:Api:[A-Za-z]+(:[A-Za-z]+)?:[A-Za-z]+$/, r.url);
    assert.equal(r.meta!.auth, 'UserToken');
    assert.equal(r.meta!.context, 'LoyaltyClub');
  }
  for (const p of ['Messages:Api:Sendings:SetPriority', 'Messages:Api:Sendings:WithoutConsentsChecks', 'Messages:Api:Messages:UseService:Campaigns', 'Messages:Api:Messages:UseService:Tenants', 'Messages:Api:Messages:UseService:TenantsTesting']) {
    assert.ok(ctx.permits.includes(p), p);
  }
  assert.ok(!ctx.permits.includes('Messages:Api:Messages:UseService:Generic'));
});

test('each route answers 403 without its permit, before reading the body', async () => {
  const c = await ctx.newClub();
  for (const r of messagingRoutes()) {
    // Without the route's permit and its aliases (Hei's earlier names).
    const accepted = permitNames(r.meta!.permit);
    const token = await c.tokenWith(ctx.permits.filter((p) => !accepted.includes(p)));
    const res = await c.request(r.method, concrete(r.url), { token, ...(r.method === 'GET' || r.method === 'DELETE' ? {} : { body: { nonsense: true } }) });
    assert.equal(res.status, 403, `${r.method} ${r.url}`);
    assert.deepEqual(res.body, { error: `Not authorized: permit ${accepted[0]} required` });
  }
});

test('a user token narrows the permits to its role', async () => {
  const c = await ctx.newClub();
  const user = await c.userToken(['Messages:Api:Messages:Index']);
  let res = await c.request('GET', '/v1/messages/generic', { headers: { Authorization: `Bearer ${user}` } });
  assert.equal(res.status, 200);
  res = await c.request('POST', '/v1/messages/generic', { headers: { Authorization: `Bearer ${user}` }, body: { message: { name: 'x', channels: [smsChannel()] } } });
  assert.equal(res.status, 403);
});

test('service permits: 403 per service before the body; generic needs none; unknown service 404', async () => {
  const c = await ctx.newClub();
  const services = { campaigns: 'Campaigns', tenants: 'Tenants', tenants_testing: 'TenantsTesting' } as const;
  const serviceRoutes = messagingRoutes().filter((r) => r.url.includes(':service'));
  assert.ok(serviceRoutes.length >= 12);
  for (const [service, pascal] of Object.entries(services)) {
    const permit = `Messages:Api:Messages:UseService:${pascal}`;
    const token = await c.tokenWith(ctx.permits.filter((p) => p !== permit));
    for (const r of serviceRoutes) {
      const res = await c.request(r.method, concrete(r.url, service), { token, ...(r.method === 'GET' || r.method === 'DELETE' ? {} : { body: { nonsense: true } }) });
      assert.equal(res.status, 403, `${r.method} ${r.url} ${service}`);
      assert.deepEqual(res.body, { error: `Not authorized: unauthorized to set specific Service (${permit} required)` });
    }
  }
  const noServices = await c.tokenWith(ctx.permits.filter((p) => !p.includes(':UseService:')));
  let res = await c.request('POST', '/v1/messages/generic', { token: noServices, body: { message: { name: 'x', channels: [smsChannel()] } } });
  assert.equal(res.status, 200);
  res = await c.request('GET', '/v1/messages/newsletters');
  assert.equal(res.status, 404);
  assert.deepEqual(res.body, { error: 'Service not found' });
  res = await c.request('POST', '/v1/messages/newsletters', { body: { message: {} } });
  assert.equal(res.status, 404);
  res = await c.request('GET', '/v1/messages/newsletters/1/sendings');
  assert.equal(res.status, 404);
});

test('GET /v1/messages/services lists only the services the client may use', async () => {
  const c = await ctx.newClub();
  let res = await c.request('GET', '/v1/messages/services');
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, {
    services: [
      { name: 'generic', permit: null, marketing: false },
      { name: 'campaigns', permit: 'Messages:Api:Messages:UseService:Campaigns', marketing: true },
      { name: 'campaigns_testing', permit: 'Messages:Api:Messages:UseService:CampaignsTesting', marketing: false },
      { name: 'tenants', permit: 'Messages:Api:Messages:UseService:Tenants', marketing: true },
      { name: 'tenants_testing', permit: 'Messages:Api:Messages:UseService:TenantsTesting', marketing: false },
      { name: 'tem_documents', permit: 'Messages:Api:Messages:UseService:TemDocuments', marketing: false },
      { name: 'tem_documents_reminders', permit: 'Messages:Api:Messages:UseService:TemDocumentsReminders', marketing: false },
    ],
  });
  const token = await c.tokenWith(['Messages:Api:Services:Index', 'Messages:Api:Messages:UseService:Tenants']);
  res = await c.request('GET', '/v1/messages/services', { token });
  assert.deepEqual(res.body.services.map((s: any) => s.name), ['generic', 'tenants']);
});

test('messages_overview covers only usable services', async () => {
  const c = await ctx.newClub();
  const g = await createMessage(c, {}, 'generic');
  const t = await createMessage(c, {}, 'tenants');
  let res = await c.request('GET', '/v1/messages_overview');
  assert.deepEqual(res.body.messages.map((m: any) => m.id), [g.id, t.id]);
  res = await c.request('GET', '/v1/messages_overview?service[]=tenants');
  assert.deepEqual(res.body.messages.map((m: any) => m.id), [t.id]);
  const token = await c.tokenWith(ctx.permits.filter((p) => p !== 'Messages:Api:Messages:UseService:Tenants'));
  res = await c.request('GET', '/v1/messages_overview', { token });
  assert.deepEqual(res.body.messages.map((m: any) => m.id), [g.id]);
});

test('priority needs SetPriority; marketing needs WithoutConsentsChecks (403)', async () => {
  const c = await ctx.newClub();
  const m = await createMessage(c);
  const noPriority = await c.tokenWith(ctx.permits.filter((p) => p !== 'Messages:Api:Sendings:SetPriority'));
  let res = await c.request('POST', `/v1/messages/generic/${m.id}/sendings`, { token: noPriority, body: { sending: { priority: 3, recipients: [{ email: 'a@example.com' }] } } });
  assert.equal(res.status, 403);
  assert.deepEqual(res.body, { error: 'Not authorized: permit Messages:Api:Sendings:SetPriority required to set priority' });
  res = await c.request('POST', '/v1/messages/generic', { token: noPriority, body: { message: { name: 'x', channels: [smsChannel()], sending: { priority: 3, recipients: [{ email: 'a@example.com' }] } } } });
  assert.equal(res.status, 403);
  const s = await createSending(c, m.id);
  res = await c.request('PUT', `/v1/messages/generic/sendings/${s.id}`, { token: noPriority, body: { sending: { priority: 9 } } });
  assert.equal(res.status, 403);
  res = await c.request('PUT', `/v1/messages/generic/sendings/${s.id}`, { body: { sending: { priority: 9 } } });
  assert.equal(res.status, 200);
  assert.equal(res.body.sending.priority, 9);
  // default priority
  assert.equal(s.priority, 5);

  const noOverride = await c.tokenWith(ctx.permits.filter((p) => p !== 'Messages:Api:Sendings:WithoutConsentsChecks'));
  res = await c.request('POST', '/v1/messages/campaigns', { token: noOverride, body: { message: { name: 'x', marketing: false, channels: [smsChannel()] } } });
  assert.equal(res.status, 403);
  assert.deepEqual(res.body, { error: 'Not authorized: permit Messages:Api:Sendings:WithoutConsentsChecks required to set marketing' });
  res = await c.request('PUT', `/v1/messages/generic/${m.id}`, { token: noOverride, body: { message: { marketing: true } } });
  assert.equal(res.status, 403);
  res = await c.request('POST', '/v1/messages/campaigns', { body: { message: { name: 'x', marketing: false, channels: [smsChannel()] } } });
  assert.equal(res.status, 200);
  const { rows } = await ctx.db.query<{ marketing: boolean }>('SELECT marketing FROM messages WHERE id = $1', [res.body.message.id]);
  assert.equal(rows[0].marketing, false);
});

test('the marketing character follows the service unless overridden', async () => {
  const c = await ctx.newClub();
  const expected = { generic: false, campaigns: true, tenants: true, tenants_testing: false } as const;
  for (const [service, marketing] of Object.entries(expected)) {
    const m = await createMessage(c, {}, service);
    const { rows } = await ctx.db.query<{ marketing: boolean }>('SELECT marketing FROM messages WHERE id = $1', [m.id]);
    assert.equal(rows[0].marketing, marketing, service);
  }
});
