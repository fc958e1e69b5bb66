// HTTP SMS gateway adapter against a real HTTP peer, and the signed delivery-report route.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import Fastify from 'fastify';
import { transportFromUrl, setClubTransport } from '../../src/transports/config.ts';
import { signReport } from '../../src/transports/http-sms.ts';
import { transportRoutes } from '../../src/transports/routes.ts';
import { setReportSink } from '../../src/transports/directory.ts';
import { installErrorHandlers } from '../../src/platform/errors.ts';
import { createClub } from '../../src/platform/clubs.ts';
import type { DeliveryReport } from '../../src/transports/transport.ts';
import { openTestDatabase } from '../helpers.ts';
import { sendUntilFinal, sms } from './fixtures.ts';

// The process key of the transport store: never a key file in the working folder.
process.env.HEI_SECRET_KEY ??= 'hei-test-suite-key';
const received: { headers: any; body: any; path: string }[] = [];
let failNext: number[] = [];
const gateway = createServer((req, res) => {
  let raw = '';
  req.on('data', (c) => (raw += c));
  req.on('end', () => {
    const status = failNext.shift();
    if (status) return res.writeHead(status, status === 429 ? { 'retry-after': '2' } : {}).end('{"error":"nope"}');
    const body = JSON.parse(raw);
    received.push({ headers: req.headers, body, path: req.url! });
    if (body.sms?.to === '4799999999') return res.writeHead(400).end('{"error":"invalid number"}');
    res.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify({ result: { id: `gw-${received.length}` } }));
  });
});
await new Promise<void>((r) => gateway.listen(0, '127.0.0.1', () => r()));
const port = (gateway.address() as AddressInfo).port;
after(() => new Promise<void>((r) => gateway.close(() => r())));

const URL_ = `http://127.0.0.1:${port}/api/send?account=7&header.Authorization=${encodeURIComponent('Bearer s3cret')}&field.to=sms.to&field.from=sms.sender&field.text=sms.body&field.reference=ref&response_id=result.id&report_secret=hook-key`;

test('JSON body mapped from the URL, auth header sent, provider id read from the answer', async () => {
  const t = transportFromUrl(URL_, 'sms');
  const m = sms('Hei {på} deg 😀', { to: '4791234567', from: { type: 'alphanumeric', value: 'Mall' } });
  const [r] = await t.send([m]);
  assert.deepEqual(r, { status: 'sent', providerId: 'gw-1', segments: 1 });
  const got = received[0];
  assert.equal(got.path, '/api/send?account=7'); // control parameters are not sent to the gateway
  assert.equal(got.headers.authorization, 'Bearer s3cret');
  assert.deepEqual(got.body, { sms: { to: '4791234567', sender: 'Mall', body: 'Hei {på} deg 😀' }, ref: String(m.dispatchId) });
});

test('429 and 5xx are retryable (Retry-After honoured), 4xx permanent, gateway down retryable then sent', async () => {
  const t = transportFromUrl(URL_ + '&concurrency=1', 'sms'); // one at a time: answers in order
  failNext = [429, 503];
  const r = await t.send([sms('a'), sms('b'), sms('c', { to: '4799999999' }), sms('d')]);
  assert.deepEqual(r.map((x) => x.status), ['retryable', 'retryable', 'permanent', 'sent']);
  assert.equal((r[0] as any).retryAfterMs, 2000);

  const down = createServer();
  await new Promise<void>((res) => down.listen(0, '127.0.0.1', () => res()));
  const downPort = (down.address() as AddressInfo).port;
  await new Promise<void>((res) => down.close(() => res()));
  const t2 = transportFromUrl(`http://127.0.0.1:${downPort}/send`, 'sms');
  assert.equal((await t2.send([sms('x')]))[0].status, 'retryable');
  failNext = [500, 500, 500];
  const { final, unfinished } = await sendUntilFinal(t, [sms('p'), sms('q')], { batchSize: 1, pauseMs: 10 });
  assert.equal(unfinished, 0);
  assert.ok([...final.values()].every((x) => x.status === 'sent'));
});

test('delivery-report route: HMAC-SHA256 verified before the reports reach the sink', async () => {
  const db = await openTestDatabase();
  const app = Fastify();
  installErrorHandlers(app);
  await transportRoutes(app as any, { db } as any);
  await app.listen({ port: 0, host: '127.0.0.1' });
  after(async () => {
    setReportSink(null);
    await app.close();
    await db.close();
  });
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const slug = `club-${randomBytes(4).toString('hex')}`;
  const club = await createClub(db, { slug, name: slug });
  await setClubTransport(db, club.id, { channel: 'sms', url: URL_ });
  const sunk: { clubId: number; reports: DeliveryReport[] }[] = [];
  setReportSink(async (clubId, reports) => void sunk.push({ clubId, reports }));

  const post = (path: string, body: string, signature?: string) =>
    fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json', ...(signature ? { 'x-hei-signature': signature } : {}) }, body });
  const body = JSON.stringify({ reports: [{ id: 'gw-1', status: 'delivered', at: '2026-11-27T06:00:00Z' }, { id: 'gw-2', status: 'UNDELIV', error: 'absent' }, { id: 'gw-3', status: 'enroute' }] });
  const path = `/v1/transports/http-sms/${slug}/reports`;

  assert.equal((await post(path, body)).status, 401);
  assert.equal((await post(path, body, signReport('wrong-key', body))).status, 401);
  assert.equal((await post(path, body + ' ', signReport('hook-key', body))).status, 401); // body altered
  assert.equal((await post(`/v1/transports/http-sms/no-such-club/reports`, body, signReport('hook-key', body))).status, 401);
  assert.equal(sunk.length, 0);

  const ok = await post(path, body, signReport('hook-key', body));
  assert.equal(ok.status, 200);
  assert.deepEqual(await ok.json(), { accepted: 2 });
  assert.equal(sunk[0].clubId, club.id);
  assert.deepEqual(
    sunk[0].reports.map((r) => [r.providerId, r.status, r.error ?? null]),
    [['gw-1', 'delivered', null], ['gw-2', 'undeliverable', 'absent']],
  );
  assert.equal(sunk[0].reports[0].at.toISOString(), '2026-11-27T06:00:00.000Z');
});
