// Members-changes webhooks in MPC's format, delivered to a local HTTPS receiver whose self-signed
// certificate the test trusts (WEBHOOKS_CA_FILE): exact v2 / v1 bodies, X-Secret-Token and the
// HMAC header, FIFO batches, the 20-day retry schedule on an injected clock, 4xx dropped, the
// delivery log, ping, redelivery, secret rotation, https-only targets, bounded timeouts.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'hei-webhooks-'));
const { selfSignedCertificate } = await import('../helpers.ts');
const made = selfSignedCertificate(dir);
if ('skip' in made) throw new Error(made.skip);
const { keyFile, certFile } = made;

process.env.WEBHOOKS_ALLOW_PRIVATE = '1'; // the receiver below listens on loopback
process.env.WEBHOOKS_CA_FILE = certFile;
const { startTestApp } = await import('../helpers.ts');
const { clubWithDemoSchema } = await import('./members-helpers.ts');
const { deliverDueEvents, BATCH_SIZE, RETRY_FOR_MS } = await import('../../src/members/webhooks.ts');
const { runImportWork } = await import('../../src/members/imports.ts');

const ctx = await startTestApp();
const settings = { allowPrivateTargets: true, caFile: certFile, timeoutMs: 2_000 };

// The receiving end: records each request and answers with the queued status codes (200 when none);
// a path in `hang` never answers.
interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  raw: string;
  body: any;
}
const received: Received[] = [];
const answers = new Map<string, number[]>();
const hang = new Set<string>();
const receiver = createServer({ key: readFileSync(keyFile), cert: readFileSync(certFile) }, (req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const raw = Buffer.concat(chunks).toString('utf8');
    received.push({ path: req.url!, headers: req.headers, raw, body: JSON.parse(raw) });
    if (hang.has(req.url!)) return;
    const queue = answers.get(req.url!) ?? [];
    res.statusCode = queue.shift() ?? 200;
    res.end('ok');
  });
});
await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
const target = `https://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
after(async () => {
  receiver.closeAllConnections();
  await new Promise<void>((resolve) => receiver.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

const hmac = (secret: string, raw: string) => 'sha256=' + createHmac('sha256', secret).update(raw).digest('hex');
const to = (path: string) => received.filter((r) => r.path === path);
const deliverAll = async (now?: Date) => {
  let n = 0;
  for (let i = 0; i < 50; i++) {
    const d = await deliverDueEvents(ctx.db, settings, { now });
    if (d === 0) break;
    n += d;
  }
  return n;
};
const subscribe = async (c: Awaited<ReturnType<typeof clubWithDemoSchema>>, body: Record<string, unknown>) => {
  const r = await c.request('POST', `${c.base}/members_changes_subscriptions`, { body });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
};
const queue = async (subscriptionId: number) =>
  (await ctx.db.query('SELECT status, attempts, next_attempt_at FROM members_webhook_events WHERE subscription_id = $1 ORDER BY id', [subscriptionId])).rows;

test('subscriptions: CRUD, https only (http just for loopback behind the switch), per-club isolation', async () => {
  const c = await clubWithDemoSchema(ctx);
  const other = await clubWithDemoSchema(ctx);
  const base = `${c.base}/members_changes_subscriptions`;
  const s = await subscribe(c, { url: `${target}/crud`, excluded_sources: { update: ['excluded-source'] } });
  assert.match(s.secret_token, /^[A-Za-z0-9]{40}$/);
  assert.deepEqual({ ...s, id: 0, secret_token: '', created_at: '', updated_at: '' }, {
    id: 0, url: `${target}/crud`, secret_token: '', event_schema_version: 1, is_sent_on_import: true, is_sent_on_update: true,
    is_sent_on_delete: true, is_person_id_sent: false, excluded_sources: { update: ['excluded-source'] }, previous_secret_expires_at: null, created_at: '', updated_at: '',
  });
  const dup = await c.request('POST', base, { body: { url: `${target}/crud` } });
  assert.deepEqual([dup.status, dup.body], [422, { error: 'Invalid parameters', details: { url: [{ error: 'taken' }] } }]);
  // MPC does not deliver over plain http; only a loopback / private target may use it, with the switch on.
  const plain = await c.request('POST', base, { body: { url: 'http://hooks.example.com/members' } });
  assert.deepEqual([plain.status, plain.body], [422, { error: 'Invalid parameters', details: { url: [{ error: 'invalid_format', options: { format: 'https_url' } }] } }]);
  assert.equal((await c.request('POST', base, { body: { url: 'http://127.0.0.1:9/loopback' } })).status, 201);
  const bad = await c.request('POST', base, { body: { url: 'ftp://example.com/x', event_schema_version: 3, excluded_sources: { rename: ['x'] } } });
  assert.equal(bad.status, 422);
  assert.deepEqual(bad.body.details.event_schema_version, [{ error: 'inclusion', options: { in: [1, 2] } }]);
  // `create` stays accepted beside MPC's `import`.
  assert.equal((await c.request('POST', base, { body: { url: `${target}/alias`, excluded_sources: { import: ['a'], create: ['b'] } } })).status, 201);

  const updated = await c.request('PUT', `${base}/${s.id}`, { body: { event_schema_version: 2, is_person_id_sent: true, is_sent_on_delete: false } });
  assert.equal(updated.status, 200);
  assert.deepEqual([updated.body.event_schema_version, updated.body.is_person_id_sent, updated.body.is_sent_on_delete, updated.body.secret_token], [2, true, false, s.secret_token]);
  assert.deepEqual((await c.request('GET', `${base}/${s.id}`)).body, updated.body);
  for (const [method, path, body] of [['GET', '', undefined], ['PUT', '', { is_sent_on_update: false }], ['DELETE', '', undefined], ['GET', '/deliveries', undefined], ['POST', '/ping', undefined], ['POST', '/rotate_secret', {}]] as const) {
    const r = await other.request(method, `${other.base}/members_changes_subscriptions/${s.id}${path}`, { body });
    assert.deepEqual([r.status, r.body], [404, { error: 'Members changes subscription not found' }], `${method} ${path}`);
  }
  assert.equal((await c.request('DELETE', `${base}/${s.id}`)).status, 204);
  assert.equal((await c.request('GET', `${base}/${s.id}`)).status, 404);
});

test('v2 bodies: import, update with was/is, delete; X-Secret-Token and HMAC on every POST; one batch in order', async () => {
  const c = await clubWithDemoSchema(ctx);
  const sub = await subscribe(c, { url: `${target}/v2`, event_schema_version: 2, is_person_id_sent: true });
  const m = (await c.request('POST', `${c.base}/members`, {
    body: { properties: { email: 'hook@example.com', first_name: 'H', interests: ['kids'] }, consents: { sms_marketing: { status: true } } },
  })).body;
  const u = (await c.request('PUT', `${c.base}/members/${m.id}`, {
    body: { properties: { msisdn: '+4740000001', first_name: 'Hanna', interests: null }, consents: { sms_marketing: false, email_marketing: true }, email_enabled: false },
  })).body;
  // Nothing changed: no event.
  await c.request('PUT', `${c.base}/members/${m.id}`, { body: { properties: { first_name: 'Hanna' } } });
  await c.request('DELETE', `${c.base}/members/${m.id}`);
  received.length = 0;
  assert.equal(await deliverAll(), 3);
  const posts = to('/v2');
  assert.equal(posts.length, 1, 'the three events travel in one POST');
  const [post] = posts;
  assert.equal(post.headers['x-secret-token'], sub.secret_token);
  assert.equal(post.headers['x-hei-signature'], hmac(sub.secret_token, post.raw));
  assert.equal(post.headers['content-type'], 'application/json');
  const slug = c.club.slug;
  const club = { id: c.club.id, slug };
  const consent = (value: boolean, at: string) => ({ value, updated_at: at });
  assert.deepEqual(post.body, {
    version: 2,
    events: [
      {
        event: { type: 'import', date: post.body.events[0].event.date },
        loyalty_club: club,
        member: {
          id: m.id, person_id: m.person_id, msisdn: null, email: 'hook@example.com',
          properties: { first_name: 'H', interests: ['kids'], language: 'en' },
          consents: { sms_marketing: consent(true, m.consents.sms_marketing.updated_at) },
          sms_status: 'enabled', email_status: 'enabled', push_status: 'enabled', optin_channel: 'test-suite', optin_subchannel: null,
          created_at: m.created_at, updated_at: m.updated_at,
        },
        member_changes: {
          email: { change: '+', was: null, is: 'hook@example.com' },
          sms_status: { change: '+', was: null, is: 'enabled' },
          email_status: { change: '+', was: null, is: 'enabled' },
          push_status: { change: '+', was: null, is: 'enabled' },
          optin_channel: { change: '+', was: null, is: 'test-suite' },
          consents: { sms_marketing: { change: '+', was: null, is: true } },
          properties: {
            first_name: { change: '+', was: null, is: 'H' },
            interests: { change: '+', was: null, is: ['kids'] },
            language: { change: '+', was: null, is: 'en' },
          },
        },
      },
      {
        event: { type: 'update', date: post.body.events[1].event.date },
        loyalty_club: club,
        member: {
          id: m.id, person_id: m.person_id, msisdn: '4740000001', email: 'hook@example.com',
          properties: { first_name: 'Hanna', language: 'en' },
          consents: { sms_marketing: consent(false, u.consents.sms_marketing.updated_at), email_marketing: consent(true, u.consents.email_marketing.updated_at) },
          sms_status: 'enabled', email_status: 'disabled', push_status: 'enabled', optin_channel: 'test-suite', optin_subchannel: null,
          created_at: m.created_at, updated_at: u.updated_at,
        },
        member_changes: {
          msisdn: { change: '+', was: null, is: '4740000001' },
          email_status: { change: '~', was: 'enabled', is: 'disabled' },
          consents: { sms_marketing: { change: '~', was: true, is: false }, email_marketing: { change: '+', was: null, is: true } },
          properties: { first_name: { change: '~', was: 'H', is: 'Hanna' }, interests: { change: '-', was: ['kids'], is: null } },
        },
      },
      {
        event: { type: 'delete', date: post.body.events[2].event.date },
        loyalty_club: club,
        member: { id: m.id, person_id: m.person_id },
        member_changes: {},
      },
    ],
  });
  for (const e of post.body.events) assert.ok(!Number.isNaN(Date.parse(e.event.date)));
  assert.deepEqual((await queue(sub.id)).map((e) => [e.status, e.attempts]), [['delivered', 1], ['delivered', 1], ['delivered', 1]]);
});

test('v1 bodies (event_schema_version 1) and excluded sources', async () => {
  const c = await clubWithDemoSchema(ctx);
  const sub = await subscribe(c, { url: `${target}/v1`, excluded_sources: { update: ['other-app'] } });
  const m = (await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'v1@example.com', msisdn: '4740000002', first_name: 'V' }, consents: { sms_marketing: true } } })).body;
  await c.request('PUT', `${c.base}/members/${m.id}`, { headers: { 'X-Product-Name': 'other-app' }, token: await c.tokenWith(ctx.permits, 'other-app'), body: { properties: { last_name: 'Skipped' } } });
  const u = (await c.request('PUT', `${c.base}/members/${m.id}`, { body: { properties: { last_name: 'One' } } })).body;
  await c.request('DELETE', `${c.base}/members/${m.id}`);
  received.length = 0;
  await deliverAll();
  const [post] = to('/v1');
  assert.equal(post.headers['x-secret-token'], sub.secret_token);
  const typed = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, { type: typeof v === 'string' || v === null ? 'string' : 'array', value: v }]));
  const common = { customer_name: c.club.name, customer_id: c.club.id, external_id: m.id, optin_date: m.created_at };
  const statuses = { sms_status: 'enabled', email_status: 'enabled', push_status: 'enabled', optin_channel: 'test-suite', optin_subchannel: null };
  assert.deepEqual(post.body, {
    version: 1,
    bulk: [
      {
        ...common, event_type: 'import', created_at: post.body.bulk[0].created_at,
        properties: typed({ msisdn: '4740000002', email: 'v1@example.com', first_name: 'V', language: 'en', ...statuses }),
        consents: { sms_marketing: { value: true } },
      },
      {
        ...common, event_type: 'update', created_at: post.body.bulk[1].created_at,
        properties: typed({ msisdn: '4740000002', email: 'v1@example.com', first_name: 'V', language: 'en', last_name: 'One', ...statuses }),
        consents: { sms_marketing: { value: true } },
      },
      { ...common, event_type: 'delete', created_at: post.body.bulk[2].created_at, properties: typed({ msisdn: '4740000002', email: 'v1@example.com' }), consents: {} },
    ],
  });
  assert.equal(u.properties.last_name, 'One');
});

test('imports produce import events (create) and update events (upsert), with the importer as source', async () => {
  const c = await clubWithDemoSchema(ctx);
  const sub = await subscribe(c, { url: `${target}/imports`, event_schema_version: 2 });
  const noImports = await subscribe(c, { url: `${target}/no-imports`, is_sent_on_import: false, is_sent_on_update: false });
  const existing = (await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'i0@example.com', first_name: 'Old' } } })).body;
  const r = await c.request('POST', `${c.base}/members/imports`, {
    body: { members: [{ properties: { email: 'i1@example.com', first_name: 'I' } }, { properties: { email: 'I0@example.com', first_name: 'New' } }, { properties: { email: 'bad' } }] },
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  while (await runImportWork(ctx.db, { clubId: c.club.id })) {
    // drain
  }
  received.length = 0;
  await deliverAll();
  const events = to('/imports').flatMap((p) => p.body.events);
  assert.deepEqual(events.map((e: any) => [e.event.type, e.member.email]), [['import', 'i0@example.com'], ['import', 'i1@example.com'], ['update', 'i0@example.com']]);
  assert.deepEqual(events[2].member_changes, { properties: { first_name: { change: '~', was: 'Old', is: 'New' } } });
  assert.equal(events[2].member.id, existing.id);
  assert.deepEqual(await queue(noImports.id), []);
  void sub;
});

test('batches: at most BATCH_SIZE events per POST, FIFO, the next batch only after the previous one', async () => {
  assert.equal(BATCH_SIZE, 500);
  const c = await clubWithDemoSchema(ctx);
  const sub = await subscribe(c, { url: `${target}/batches`, event_schema_version: 2 });
  const ids: number[] = [];
  for (let i = 0; i < 5; i++) ids.push((await c.request('POST', `${c.base}/members`, { body: { properties: { email: `b${i}@example.com`, first_name: 'B' } } })).body.id);
  received.length = 0;
  const small = { ...settings, batchSize: 2, maxBatchesPerClaim: 1 };
  // One run sends one batch per subscription: the queue head must be settled before the next goes.
  assert.equal(await deliverDueEvents(ctx.db, small), 2);
  assert.equal(await deliverDueEvents(ctx.db, small), 2);
  assert.equal(await deliverDueEvents(ctx.db, small), 1);
  assert.deepEqual(to('/batches').map((p) => p.body.events.map((e: any) => e.member.id)), [ids.slice(0, 2), ids.slice(2, 4), ids.slice(4)]);
  const log = await c.request('GET', `${c.base}/members_changes_subscriptions/${sub.id}/deliveries`);
  assert.equal(log.status, 200);
  assert.deepEqual(log.body.deliveries.map((d: any) => [d.kind, d.events_count, d.outcome, d.response_status, d.error]), [
    ['events', 1, 'delivered', 200, null], ['events', 2, 'delivered', 200, null], ['events', 2, 'delivered', 200, null],
  ]);
  assert.equal(log.body.pagination_info.total_count, 3);
  // By default a claim keeps going while batches are delivered: all of them in one run, in order.
  for (let i = 0; i < 5; i++) ids.push((await c.request('POST', `${c.base}/members`, { body: { properties: { email: `c${i}@example.com`, first_name: 'C' } } })).body.id);
  received.length = 0;
  assert.equal(await deliverDueEvents(ctx.db, { ...settings, batchSize: 2 }), 5);
  assert.deepEqual(to('/batches').map((p) => p.body.events.map((e: any) => e.member.id)), [ids.slice(5, 7), ids.slice(7, 9), ids.slice(9)]);
});

test('retries: 5xx, 408, 429 and timeouts retried with backoff for 20 days (injected clock), the queue held meanwhile; 4xx dropped', async () => {
  const c = await clubWithDemoSchema(ctx);
  const flaky = await subscribe(c, { url: `${target}/flaky`, event_schema_version: 2 });
  answers.set('/flaky', [500, 408, 429]);
  const first = (await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'f1@example.com', first_name: 'F' } } })).body;
  received.length = 0;
  let now = new Date();
  await deliverAll(now);
  let [head] = await queue(flaky.id);
  assert.deepEqual([head.status, head.attempts, new Date(head.next_attempt_at).getTime() - now.getTime()], ['pending', 1, 30_000]);
  // A later event waits behind the head: FIFO per subscription.
  const second = (await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'f2@example.com', first_name: 'F' } } })).body;
  assert.equal(await deliverAll(new Date(now.getTime() + 10_000)), 0);
  for (const wait of [30_000, 60_000, 120_000]) {
    now = new Date(now.getTime() + wait);
    await deliverAll(now);
  }
  const posts = to('/flaky').map((p) => p.body.events.map((e: any) => e.member.id));
  assert.deepEqual(posts, [[first.id], [first.id, second.id], [first.id, second.id], [first.id, second.id]]);
  assert.deepEqual((await queue(flaky.id)).map((e) => e.status), ['delivered', 'delivered']);

  // A receiver down for good: the schedule doubles from 30 s up to 6 h and ends after 20 days.
  const down = await subscribe(c, { url: `${target}/down`, event_schema_version: 2 });
  answers.set('/down', Array(500).fill(503));
  await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'down@example.com', first_name: 'D' } } });
  const created = new Date((await ctx.db.query('SELECT created_at FROM members_webhook_events WHERE subscription_id = $1', [down.id])).rows[0].created_at);
  now = new Date();
  const waits: number[] = [];
  for (let i = 0; i < 200; i++) {
    await deliverDueEvents(ctx.db, settings, { now });
    [head] = await queue(down.id);
    if (head.status !== 'pending') break;
    const next = new Date(head.next_attempt_at);
    waits.push((next.getTime() - now.getTime()) / 1000);
    now = next;
  }
  assert.equal(head.status, 'failed');
  assert.deepEqual(waits.slice(0, 12), [30, 60, 120, 240, 480, 960, 1920, 3840, 7680, 15360, 21600, 21600]);
  assert.ok(waits.slice(10).every((w) => w === 21600));
  const lastAttempt = now.getTime() - created.getTime();
  assert.ok(lastAttempt <= RETRY_FOR_MS && lastAttempt > RETRY_FOR_MS - 6 * 3600_000, `last attempt after ${lastAttempt / 86400_000} days`);
  assert.equal(head.attempts, waits.length + 1);
  const log = (await c.request('GET', `${c.base}/members_changes_subscriptions/${down.id}/deliveries?per_page=2`)).body;
  assert.deepEqual(log.deliveries.map((d: any) => [d.outcome, d.response_status]), [['failed', 503], ['retry', 503]]);
  assert.equal(log.pagination_info.total_count, head.attempts);

  // 4xx (here 400 and 410 Gone) are dropped at once, logged, and the queue moves on.
  const gone = await subscribe(c, { url: `${target}/gone`, event_schema_version: 2 });
  answers.set('/gone', [410, 400]);
  await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'g1@example.com', first_name: 'G' } } });
  await deliverAll();
  await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'g2@example.com', first_name: 'G' } } });
  await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'g3@example.com', first_name: 'G' } } });
  await deliverAll();
  assert.deepEqual((await queue(gone.id)).map((e) => [e.status, e.attempts]), [['dropped', 1], ['dropped', 1], ['dropped', 1]]);
  const goneLog = (await c.request('GET', `${c.base}/members_changes_subscriptions/${gone.id}/deliveries`)).body.deliveries;
  assert.deepEqual(goneLog.map((d: any) => [d.outcome, d.response_status, d.events_count]), [['dropped', 400, 2], ['dropped', 410, 1]]);

  // A receiver that never answers: cut off at the timeout, retried, no worker stuck.
  const slow = await subscribe(c, { url: `${target}/slow`, event_schema_version: 2 });
  hang.add('/slow');
  await c.request('POST', `${c.base}/members`, { body: { properties: { email: 's1@example.com', first_name: 'S' } } });
  const started = Date.now();
  await deliverDueEvents(ctx.db, { ...settings, timeoutMs: 300 });
  assert.ok(Date.now() - started < 3_000, `${Date.now() - started} ms`);
  const slowLog = (await c.request('GET', `${c.base}/members_changes_subscriptions/${slow.id}/deliveries`)).body.deliveries;
  assert.deepEqual(slowLog.map((d: any) => [d.outcome, d.response_status]), [['retry', null]]);
  assert.match(slowLog[0].error, /timeout|ECONNRESET/);
  hang.delete('/slow');
});

test('ping, manual redelivery, secret rotation with an overlap', async () => {
  const c = await clubWithDemoSchema(ctx);
  const sub = await subscribe(c, { url: `${target}/ops`, event_schema_version: 2 });
  const base = `${c.base}/members_changes_subscriptions/${sub.id}`;
  received.length = 0;
  const ping = await c.request('POST', `${base}/ping`);
  assert.equal(ping.status, 200, JSON.stringify(ping.body));
  assert.deepEqual({ ...ping.body, id: 0, duration_ms: 0, attempted_at: '' }, {
    id: 0, kind: 'ping', events_count: 0, event_ids: [], outcome: 'delivered', response_status: 200, error: null, duration_ms: 0, attempted_at: '',
  });
  assert.deepEqual(to('/ops').map((p) => [p.body, p.headers['x-secret-token']]), [[{ version: 2, events: [] }, sub.secret_token]]);

  const m = (await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'ops@example.com', first_name: 'O' } } })).body;
  await deliverAll();
  const [delivery] = (await c.request('GET', `${base}/deliveries`)).body.deliveries;
  assert.equal(delivery.kind, 'events');
  const again = await c.request('POST', `${base}/deliveries/${delivery.id}/redeliver`);
  assert.deepEqual([again.status, again.body], [202, { events_count: 1 }]);
  assert.equal((await c.request('POST', `${base}/deliveries/999999999/redeliver`)).status, 404);
  received.length = 0;
  await deliverAll();
  const [resent] = to('/ops');
  assert.deepEqual(resent.body.events.map((e: any) => [e.event.type, e.member.id]), [['import', m.id]]);

  // Rotation: during the overlap both secrets are sent (new first), so a receiver checking either accepts.
  const rotated = await c.request('POST', `${base}/rotate_secret`, { body: { overlap_seconds: 3600 } });
  assert.equal(rotated.status, 200);
  const fresh = rotated.body.secret_token;
  assert.notEqual(fresh, sub.secret_token);
  assert.ok(Date.parse(rotated.body.previous_secret_expires_at) > Date.now() + 3500_000);
  received.length = 0;
  await c.request('POST', `${base}/ping`);
  const [overlap] = to('/ops');
  assert.deepEqual(String(overlap.headers['x-secret-token']).split(', '), [fresh, sub.secret_token]);
  assert.deepEqual(String(overlap.headers['x-hei-signature']).split(', '), [hmac(fresh, overlap.raw), hmac(sub.secret_token, overlap.raw)]);
  // Without an overlap the old secret stops at once.
  const hard = (await c.request('POST', `${base}/rotate_secret`, { body: { overlap_seconds: 0 } })).body;
  assert.equal(hard.previous_secret_expires_at, null);
  received.length = 0;
  await c.request('POST', `${base}/ping`);
  assert.deepEqual([to('/ops')[0].headers['x-secret-token'], to('/ops')[0].headers['x-hei-signature']], [hard.secret_token, hmac(hard.secret_token, to('/ops')[0].raw)]);
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
  for (const url of ['http://127.0.0.1:8080/x', 'https://localhost/x', 'https://10.1.2.3/x', 'https://192.168.0.10/x', 'http://169.254.169.254/latest', 'https://[::1]/x', 'https://[::ffff:127.0.0.1]/x', 'https://metadata.internal/x',
    // a trailing dot, and IPv6 forms that embed a private IPv4 (compatible, translated, NAT64, 6to4)
    'https://localhost./x', 'https://hooks.example.com./x', 'https://[::127.0.0.1]/x', 'https://[::ffff:0:7f00:1]/x', 'https://[64:ff9b::a00:1]/x', 'https://[2002:7f00:1::]/x',
    // a name that resolves to a private address (from /etc/hosts), refused at subscription time already
    ...privateNames().map((name) => `https://${name}:8080/x`)]) {
    const r = await c.request('POST', base, { body: { url } });
    assert.deepEqual([r.status, r.body], [422, { error: 'Invalid parameters', details: { url: [{ error: 'private_address_not_allowed' }] } }], url);
  }
  const ok = await c.request('POST', base, { body: { url: 'https://hooks.example.com/members' } });
  assert.equal(ok.status, 201);
  // A public name that resolves to loopback is refused at delivery time: dropped and logged, nothing sent.
  const { rows } = await strict.db.query(
    `INSERT INTO members_changes_subscriptions (loyalty_club_id, url, secret_token) VALUES ($1, $2, 's') RETURNING id`,
    [c.club.id, `https://localhost:${(receiver.address() as AddressInfo).port}/sneaky`],
  );
  await strict.db.query(`INSERT INTO members_webhook_events (subscription_id, loyalty_club_id, action, member_id, payload) VALUES ($1, $2, 'create', 1, '{}')`, [rows[0].id, c.club.id]);
  received.length = 0;
  await deliverDueEvents(strict.db, { allowPrivateTargets: false });
  assert.equal(to('/sneaky').length, 0);
  const log = await strict.db.query('SELECT outcome, response_status, error FROM members_webhook_deliveries WHERE subscription_id = $1', [rows[0].id]);
  assert.deepEqual(log.rows, [{ outcome: 'dropped', response_status: null, error: 'target not allowed' }]);
});
