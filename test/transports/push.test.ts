// Web Push (payload decrypted by the test endpoint) and FCM HTTP v1 (JWT verified by the token peer).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import webpush from 'web-push';
import { WebPushTransport } from '../../src/transports/webpush.ts';
import { FcmTransport } from '../../src/transports/fcm.ts';
import { transportFromUrl } from '../../src/transports/config.ts';
import { startFcmPeer, startWebPushPeer } from './push-peers.ts';
import { push } from './fixtures.ts';

const vapid = webpush.generateVAPIDKeys();
const wp = await startWebPushPeer();
const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const account = { client_email: 'hei@project.iam.test', private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
const fcm = await startFcmPeer(publicKey, account.client_email);
after(async () => {
  await wp.close();
  await fcm.close();
});

test('Web Push: VAPID-signed, aes128gcm payload decrypts to {title, body, image, url, data}', async () => {
  const t = new WebPushTransport({ subject: 'mailto:ops@infinity-mall.test', publicKey: vapid.publicKey, privateKey: vapid.privateKey });
  const token = wp.subscribe('anna');
  const m = push(token, { title: 'Helg 😀', body: 'Tilbud på alt', image: 'https://cdn.test/a.png', url: 'https://mall.test/o/1', data: { offer: '42' } });
  const [r] = await t.send([m]);
  assert.equal(r.status, 'sent', JSON.stringify(r) + wp.errors.join());
  assert.match((r as any).providerId, /\/msg\/1$/);
  const got = wp.received[0];
  assert.deepEqual(got.payload, { title: 'Helg 😀', body: 'Tilbud på alt', image: 'https://cdn.test/a.png', url: 'https://mall.test/o/1', data: { offer: '42' } });
  assert.equal(got.vapid.sub, 'mailto:ops@infinity-mall.test');
  assert.equal(got.vapid.publicKey, vapid.publicKey);
  assert.ok(Number(got.headers.ttl) > 0);
});

test('Web Push: 404 / 410 are permanent and gone, 429 retryable with Retry-After, a non-subscription token permanent', async () => {
  const url = `webpush:?subject=${encodeURIComponent('mailto:ops@x.test')}&public_key=${vapid.publicKey}&private_key=${vapid.privateKey}`;
  const t = transportFromUrl(url, 'push');
  const sub = (id: string) => JSON.stringify({ endpoint: `http://127.0.0.1:${wp.port}/push/${id}`, keys: JSON.parse(wp.subscribe('x')).keys });
  const r = await t.send([push(sub('gone-410')), push(sub('gone-404')), push(sub('busy')), push('fcm-token-not-json'), push(wp.subscribe('ok'))]);
  assert.deepEqual(
    r.map((x) => [x.status, (x as any).gone ?? null, (x as any).retryAfterMs ?? null]),
    [['permanent', true, null], ['permanent', true, null], ['retryable', null, 3000], ['permanent', null, null], ['sent', null, null]],
  );
});

test('FCM HTTP v1: service-account JWT exchanged once, message mapped, UNREGISTERED is gone', async () => {
  const t = new FcmTransport({ project: 'mall-app', account, tokenUri: `http://127.0.0.1:${fcm.port}/token`, endpoint: `http://127.0.0.1:${fcm.port}` });
  const r = await t.send([
    push('device-1', { title: 'Hei', body: 'Ny kupong', image: 'https://cdn.test/k.png', url: 'https://mall.test/k', data: { coupon: '7' } }),
    push('device-2'),
    push('dead'),
    push('busy'),
    push('bad'),
  ]);
  assert.deepEqual(r.map((x) => x.status), ['sent', 'sent', 'permanent', 'retryable', 'permanent'], JSON.stringify(r) + fcm.errors.join());
  assert.equal((r[2] as any).gone, true);
  assert.equal((r[4] as any).gone, undefined);
  assert.match((r[2] as any).error, /UNREGISTERED/);
  assert.equal(fcm.tokensIssued.length, 1);
  const first = fcm.sent.find((s) => s.message.token === 'device-1');
  assert.equal(first.project, 'mall-app');
  assert.deepEqual(first.message.notification, { title: 'Hei', body: 'Ny kupong', image: 'https://cdn.test/k.png' });
  assert.deepEqual(first.message.data, { coupon: '7', url: 'https://mall.test/k' });
  assert.match((r[0] as any).providerId, /^projects\/mall-app\/messages\/\d+$/);
});

test('FCM: a revoked access token is exchanged again; configured from a URL with a credentials file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hei-fcm-'));
  const file = join(dir, 'sa.json');
  writeFileSync(file, JSON.stringify({ ...account, token_uri: `http://127.0.0.1:${fcm.port}/token`, project_id: 'mall-app' }));
  const t = transportFromUrl(`fcm:?project=mall-app&credentials=${encodeURIComponent(file)}&endpoint=${encodeURIComponent(`http://127.0.0.1:${fcm.port}`)}`, 'push');
  const before = fcm.tokensIssued.length;
  assert.equal((await t.send([push('device-3')]))[0].status, 'sent');
  fcm.revokeTokens();
  assert.equal((await t.send([push('device-4')]))[0].status, 'sent');
  assert.equal(fcm.tokensIssued.length - before, 2);
});
