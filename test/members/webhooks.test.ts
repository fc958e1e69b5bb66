// Members changes subscriptions: CRUD, the outbox written with each change, signed delivery to a
// real HTTP server, excluded sources, retries with backoff, recorded attempts, private targets.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';

process.env.WEBHOOKS_ALLOW_PRIVATE = '1'; // the receiver below listens on loopback
const { startTestApp } = await import('../helpers.ts');
const { clubWithDemoSchema } = await import('./members-helpers.ts');
const { deliverDueEvents, MAX_DELIVERY_ATTEMPTS } = await import('../../src/members/webhooks.ts');
const { runImportWork } = await import('../../src/members/imports.ts');

const ctx = await startTestApp();
const settings = { allowPrivateTargets: true, backoffBaseMs: 2_000 };

// The receiving end: verifies each signature itself and answers with the queued status codes.
interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  raw: string;
  body: any;
}
const received: Received[] = [];
const answers = new Map<string, number[]>();
const receiver = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const raw = Buffer.concat(chunks).toString('utf8');
    received.push({ path: req.url!, headers: req.headers, raw, body: JSON.parse(raw) });
    const queue = answers.get(req.url!) ?? [];
    res.statusCode = queue.shift() ?? 200;
    res.end('ok');
  });
});
await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
const target = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
after(() => new Promise<void>((resolve) => receiver.close(() => resolve())));

const verify = (secret: string, r: Received) => r.headers['x-hei-signature'] === 'sha256=' + createHmac('sha256', secret).update(r.raw).digest('hex');
const eventsOf = async (subscriptionId: number) =>
  (await ctx.db.query('SELECT action, member_id, status, attempts, payload FROM members_webhook_events WHERE subscription_id = $1 ORDER BY id', [subscriptionId])).rows;
const deliverAll = async () => {
  while ((await deliverDueEvents(ctx.db, settings)) > 0) {
    // until nothing is due
  }
};

test('subscription CRUD, defaults, validation, per-club isolation', async () => {
  const c = await clubWithDemoSchema(ctx);
  const other = await clubWithDemoSchema(ctx);
  const base = `${c.base}/members_changes_subscriptions`;
  const created = await c.request('POST', base, { body: { url: `${target}/crud`, excluded_sources: { update: ['excluded-source'] } } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const s = created.body;
  assert.match(s.secret_token, /^[A-Za-z0-9]{40}$/);
  assert.deepEqual({ ...s, id: 0, secret_token: '', created_at: '', updated_at: '' }, {
    id: 0, url: `${target}/crud`, secret_token: '', event_schema_version: 1, is_sent_on_import: true, is_sent_on_update: true,
    is_sent_on_delete: true, is_person_id_sent: false, excluded_sources: { update: ['excluded-source'] }, created_at: '', updated_at: '',
  });
  const dup = await c.request('POST', base, { body: { url: `${target}/crud` } });
  assert.deepEqual([dup.status, dup.body], [422, { error: 'Invalid parameters', details: { url: [{ error: 'taken' }] } }]);
  const bad = await c.request('POST', base, { body: { url: 'ftp://example.com/x', event_schema_version: 3, excluded_sources: { rename: ['x'] } } });
  assert.equal(bad.status, 422);
  assert.deepEqual(bad.body.details.event_schema_version, [{ error: 'inclusion', options: { in: [1, 2] } }]);

  const updated = await c.request('PUT', `${base}/${s.id}`, { body: { event_schema_version: 2, is_person_id_sent: true, is_sent_on_delete: false } });
  assert.equal(updated.status, 200);
  assert.deepEqual([updated.body.event_schema_version, updated.body.is_person_id_sent, updated.body.is_sent_on_delete, updated.body.secret_token, updated.body.url], [2, true, false, s.secret_token, s.url]);
  assert.deepEqual((await c.request('GET', `${base}/${s.id}`)).body, updated.body);
  const list = await c.request('GET', base);
  assert.deepEqual([list.body.members_changes_subscriptions, list.body.pagination_info.total_count], [[updated.body], 1]);

  for (const [method, body] of [['GET', undefined], ['PUT', { is_sent_on_update: false }], ['DELETE', undefined]] as const) {
    const r = await other.request(method, `${other.base}/members_changes_subscriptions/${s.id}`, { body });
    assert.deepEqual([r.status, r.body], [404, { error: 'Members changes subscription not found' }], method);
  }
  assert.equal((await c.request('DELETE', `${base}/${s.id}`)).status, 204);
  assert.equal((await c.request('GET', `${base}/${s.id}`)).status, 404);
});

test('member changes are delivered signed; events are written with the change; excluded sources honoured', async () => {
  const c = await clubWithDemoSchema(ctx);
  const base = `${c.base}/members_changes_subscriptions`;
  const v1 = (await c.request('POST', base, { body: { url: `${target}/v1`, excluded_sources: { update: ['test-suite'] } } })).body;
  const v2 = (await c.request('POST', base, { body: { url: `${target}/v2`, event_schema_version: 2, is_person_id_sent: true, is_sent_on_delete: false } })).body;

  const m = (await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'hook@example.com', first_name: 'H' }, person_id: 'p-1' } })).body;
  // The outbox rows exist as soon as the change is committed, before any delivery.
  assert.deepEqual((await eventsOf(v1.id)).map((e) => [e.action, Number(e.member_id), e.status]), [['create', m.id, 'pending']]);
  await c.request('PUT', `${c.base}/members/${m.id}`, { body: { properties: { last_name: 'Hook' } } });
  await c.request('PUT', `${c.base}/members/${m.id}`, { headers: { 'X-Product-Name': 'other-app' }, token: await c.tokenWith(ctx.permits, 'other-app'), body: { properties: { last_name: 'Hooked' } } });
  await c.request('DELETE', `${c.base}/members/${m.id}`);

  received.length = 0;
  await deliverAll();
  const byPath = (p: string) => received.filter((r) => r.path === p).sort((a, b) => ['create', 'update', 'delete'].indexOf(a.body.action) - ['create', 'update', 'delete'].indexOf(b.body.action) || a.body.source.localeCompare(b.body.source));
  const got1 = byPath('/v1');
  const got2 = byPath('/v2');
  assert.ok(received.every((r) => verify(r.path === '/v1' ? v1.secret_token : v2.secret_token, r)), 'every signature verifies');
  assert.ok(received.every((r) => r.headers['content-type'] === 'application/json' && r.headers['x-hei-event-id'] === r.body.event_id));
  // v1: create, the update from other-app (test-suite's update excluded), delete.
  assert.deepEqual(got1.map((r) => [r.body.action, r.body.source]), [['create', 'test-suite'], ['update', 'other-app'], ['delete', 'test-suite']]);
  assert.deepEqual(Object.keys(got1[0].body).sort(), ['action', 'event_id', 'event_schema_version', 'loyalty_club_slug', 'member_id', 'occurred_at', 'source']);
  assert.deepEqual([got1[0].body.member_id, got1[0].body.loyalty_club_slug, got1[0].body.event_schema_version], [m.id, c.club.slug, 1]);
  // v2: the member itself and person_id; no delete notifications.
  assert.deepEqual(got2.map((r) => [r.body.action, r.body.source]), [['create', 'test-suite'], ['update', 'other-app'], ['update', 'test-suite']]);
  assert.equal(got2[0].body.person_id, 'p-1');
  assert.deepEqual([got2[0].body.member.id, got2[0].body.member.properties.email, got2[0].body.member.person_id], [m.id, 'hook@example.com', 'p-1']);
  assert.equal(got2[1].body.member.properties.last_name, 'Hooked');

  const events = await eventsOf(v1.id);
  assert.deepEqual(events.map((e) => [e.status, e.attempts]), [['delivered', 1], ['delivered', 1], ['delivered', 1]]);
  const attempts = await ctx.db.query(
    `SELECT a.response_status, a.error FROM members_webhook_attempts a JOIN members_webhook_events e ON e.id = a.event_id WHERE e.subscription_id = $1`,
    [v1.id],
  );
  assert.deepEqual(attempts.rows, [{ response_status: 200, error: null }, { response_status: 200, error: null }, { response_status: 200, error: null }]);
});

test('imports notify through is_sent_on_import with the importer as source', async () => {
  const c = await clubWithDemoSchema(ctx);
  const sub = (await c.request('POST', `${c.base}/members_changes_subscriptions`, { body: { url: `${target}/imports` } })).body;
  const noImports = (await c.request('POST', `${c.base}/members_changes_subscriptions`, { body: { url: `${target}/no-imports`, is_sent_on_import: false } })).body;
  await c.request('POST', `${c.base}/members/imports`, {
    body: { members: [{ properties: { email: 'i1@example.com', first_name: 'I' } }, { properties: { email: 'i2@example.com', first_name: 'J' } }, { properties: { email: 'bad' } }] },
  });
  while (await runImportWork(ctx.db, { clubId: c.club.id })) {
    // drain
  }
  assert.deepEqual((await eventsOf(sub.id)).map((e) => [e.action, e.payload.source]), [['create', 'test-suite'], ['create', 'test-suite']]);
  assert.deepEqual(await eventsOf(noImports.id), []);
});

test('failed deliveries are retried with exponential backoff, every attempt recorded, then given up', async () => {
  const c = await clubWithDemoSchema(ctx);
  const sub = (await c.request('POST', `${c.base}/members_changes_subscriptions`, { body: { url: `${target}/flaky` } })).body;
  answers.set('/flaky', [500, 503]);
  await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'flaky@example.com', first_name: 'F' } } });
  const [event] = await eventsOf(sub.id);
  const eventRow = async () => (await ctx.db.query(
    `SELECT id, status, attempts, round(extract(epoch FROM next_attempt_at - now()))::int AS wait FROM members_webhook_events WHERE subscription_id = $1`, [sub.id])).rows[0];
  await deliverAll();
  let row = await eventRow();
  assert.deepEqual([row.status, row.attempts, row.wait], ['pending', 1, 2]);
  await ctx.db.query(`UPDATE members_webhook_events SET next_attempt_at = now() WHERE id = $1`, [row.id]);
  await deliverAll();
  row = await eventRow();
  assert.deepEqual([row.status, row.attempts, row.wait], ['pending', 2, 4]);
  await ctx.db.query(`UPDATE members_webhook_events SET next_attempt_at = now() WHERE id = $1`, [row.id]);
  await deliverAll();
  row = await eventRow();
  assert.deepEqual([row.status, row.attempts], ['delivered', 2 + 1]);
  const attempts = await ctx.db.query('SELECT response_status, error FROM members_webhook_attempts WHERE event_id = $1 ORDER BY id', [row.id]);
  assert.deepEqual(attempts.rows, [{ response_status: 500, error: 'HTTP 500' }, { response_status: 503, error: 'HTTP 503' }, { response_status: 200, error: null }]);
  void event;

  // A receiver that never answers 2xx: given up after the last attempt.
  const dead = (await c.request('POST', `${c.base}/members_changes_subscriptions`, { body: { url: `${target}/dead` } })).body;
  answers.set('/dead', Array(MAX_DELIVERY_ATTEMPTS + 2).fill(410));
  await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'dead@example.com', first_name: 'D' } } });
  for (let i = 0; i < MAX_DELIVERY_ATTEMPTS + 1; i++) {
    await ctx.db.query(`UPDATE members_webhook_events SET next_attempt_at = now() WHERE subscription_id = $1 AND status = 'pending'`, [dead.id]);
    await deliverAll();
  }
  const deadEvents = await eventsOf(dead.id);
  assert.deepEqual(deadEvents.map((e) => [e.status, e.attempts]), [['failed', MAX_DELIVERY_ATTEMPTS]]);
});

/** Host names this machine resolves to private addresses without DNS (from /etc/hosts), `localhost` aside. */
function privateNames(): string[] {
  const hosts = existsSync('/etc/hosts') ? readFileSync('/etc/hosts', 'utf8') : '';
  return hosts
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim().split(/\s+/))
    .filter(([address, ...names]) => /^(127\.|10\.|192\.168\.)/.test(address ?? '') && names.length > 0)
    .flatMap(([, ...names]) => names)
    .filter((name) => !/localhost/.test(name))
    .slice(0, 1);
}

test('private and loopback targets are refused unless allowed', async () => {
  process.env.WEBHOOKS_ALLOW_PRIVATE = '0';
  const strict = await startTestApp();
  process.env.WEBHOOKS_ALLOW_PRIVATE = '1';
  const c = await strict.newClub();
  const base = `/v3/${c.club.slug}/members_changes_subscriptions`;
  for (const url of ['http://127.0.0.1:8080/x', 'http://localhost/x', 'http://10.1.2.3/x', 'http://192.168.0.10/x', 'http://169.254.169.254/latest', 'http://[::1]/x', 'http://[::ffff:127.0.0.1]/x', 'http://metadata.internal/x',
    // a trailing dot, and IPv6 forms that embed a private IPv4 (compatible, translated, NAT64, 6to4)
    'http://localhost./x', 'http://hooks.example.com./x', 'http://[::127.0.0.1]/x', 'http://[::ffff:0:7f00:1]/x', 'http://[64:ff9b::a00:1]/x', 'http://[2002:7f00:1::]/x',
    // a name that resolves to a private address (from /etc/hosts), refused at subscription time already
    ...privateNames().map((name) => `http://${name}:8080/x`)]) {
    const r = await c.request('POST', base, { body: { url } });
    assert.deepEqual([r.status, r.body], [422, { error: 'Invalid parameters', details: { url: [{ error: 'private_address_not_allowed' }] } }], url);
  }
  const ok = await c.request('POST', base, { body: { url: 'https://hooks.example.com/members' } });
  assert.equal(ok.status, 201);
  // A public name that resolves to loopback is refused at delivery time.
  const { rows } = await strict.db.query(
    `INSERT INTO members_changes_subscriptions (loyalty_club_id, url, secret_token) VALUES ($1, $2, 's') RETURNING id`,
    [c.club.id, `http://localhost:${(receiver.address() as AddressInfo).port}/sneaky`],
  );
  await strict.db.query(`INSERT INTO members_webhook_events (subscription_id, loyalty_club_id, action, member_id, payload) VALUES ($1, $2, 'create', 1, '{}')`, [rows[0].id, c.club.id]);
  received.length = 0;
  await deliverDueEvents(strict.db, { allowPrivateTargets: false });
  assert.equal(received.filter((r) => r.path === '/sneaky').length, 0);
  const attempt = await strict.db.query(
    'SELECT a.response_status, a.error FROM members_webhook_attempts a JOIN members_webhook_events e ON e.id = a.event_id WHERE e.subscription_id = $1',
    [rows[0].id],
  );
  assert.deepEqual(attempt.rows, [{ response_status: null, error: 'EPRIVATE' }]);
});
