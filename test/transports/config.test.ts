// Transport configuration: encrypted at rest, redacted on display, built into working transports,
// and the `hei transports` CLI. On PGlite, or the PostgreSQL of DATABASE_URL.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClub } from '../../src/platform/clubs.ts';
import {
  accountKey,
  checkTransportUrl,
  loadClubTransports,
  redactedSettings,
  redactUrl,
  resetClubTransport,
  setClubTransport,
} from '../../src/transports/config.ts';
import { decryptSecret, encryptSecret, keyFromText, loadSecretKey } from '../../src/transports/secrets.ts';
import { TransportDirectory, setReportSink } from '../../src/transports/directory.ts';
import { FailoverTransport } from '../../src/transports/failover.ts';
import { RateLimitedTransport } from '../../src/transports/ratelimit.ts';
import type { DeliveryReport } from '../../src/transports/transport.ts';
import { openTestDatabase, usingPostgres } from '../helpers.ts';
import { startSmppPeer } from './smpp-peer.ts';
import { sleep, sms } from './fixtures.ts';

// The process key of the transport store: never a key file in the working folder.
process.env.HEI_SECRET_KEY ??= 'hei-test-suite-key';
const db = await openTestDatabase();
after(() => db.close());
const key = keyFromText('0'.repeat(63) + '1');
const newClub = async () => {
  const slug = `club-${randomBytes(4).toString('hex')}`;
  return createClub(db, { slug, name: slug });
};

test('secrets: AES-256-GCM bound to their row; the key from HEI_SECRET_KEY or a generated key file', () => {
  const sealed = encryptSecret(key, 'smpp://id:pw@h:1', 'transport:1:sms:primary');
  assert.ok(!sealed.includes('pw'));
  assert.equal(decryptSecret(key, sealed, 'transport:1:sms:primary'), 'smpp://id:pw@h:1');
  assert.throws(() => decryptSecret(key, sealed, 'transport:2:sms:primary'), /cannot decrypt/);
  assert.throws(() => decryptSecret(keyFromText('other'), sealed, 'transport:1:sms:primary'), /cannot decrypt/);
  assert.equal(keyFromText(randomBytes(32).toString('base64')).length, 32);
  const dir = mkdtempSync(join(tmpdir(), 'hei-key-'));
  const k1 = loadSecretKey({ HEI_DATA_DIR: dir });
  assert.equal(k1.length, 32);
  assert.equal(statSync(join(dir, 'secret.key')).mode & 0o777, 0o600);
  assert.deepEqual(loadSecretKey({ HEI_DATA_DIR: dir }), k1);
  assert.deepEqual(loadSecretKey({ HEI_SECRET_KEY: 'a'.repeat(64) }), Buffer.from('a'.repeat(64), 'hex'));
});

test('redaction hides passwords and secret parameters, keeps the rest', () => {
  assert.equal(redactUrl('smpp://hei:p%40ss@10.0.0.1:2775?window=100'), 'smpp://hei:***@10.0.0.1:2775?window=100');
  assert.equal(redactUrl('smtps://mailer:pw@smtp.test:465?pool=5'), 'smtps://mailer:***@smtp.test:465?pool=5');
  assert.equal(
    redactUrl('https://gw.test/send?header.Authorization=Bearer+x&field.to=msisdn&report_secret=k&api_key=z'),
    'https://gw.test/send?header.Authorization=***&field.to=msisdn&report_secret=***&api_key=***',
  );
  assert.equal(redactUrl('webpush:?subject=mailto%3Aa%40b.test&public_key=PUB&private_key=PRIV'), 'webpush:?subject=mailto%3Aa%40b.test&public_key=PUB&private_key=***');
  assert.equal(redactUrl('fcm:?project=p&credentials=%2Fetc%2Fsa.json'), 'fcm:?project=p&credentials=%2Fetc%2Fsa.json');
  assert.equal(accountKey('smpp://hei:pw@h:2775?window=5'), 'smpp://hei@h:2775');
});

test('URL checks: scheme must match the channel; required parameters', () => {
  assert.throws(() => checkTransportUrl('smtp://h:25', 'sms'), /email transport, not sms/);
  assert.throws(() => checkTransportUrl('ftp://h', 'sms'), /unsupported/);
  assert.throws(() => checkTransportUrl('webpush:?subject=x', 'push'), /needs public_key, private_key/);
  assert.throws(() => checkTransportUrl('smpp://h:2775', 'sms'), /SYSTEM_ID/);
  assert.equal(checkTransportUrl('ssmpp://a:b@h', 'sms').kind, 'smpp');
  assert.throws(() => checkTransportUrl('http://gateway.example/send', 'sms'), /must be https/);
  assert.equal(checkTransportUrl('http://127.0.0.1:8080/send', 'sms').kind, 'http-sms');
});

test('stored encrypted, listed redacted, reset back to the outbox', async () => {
  const club = await newClub();
  await setClubTransport(db, club.id, { channel: 'sms', url: 'smpp://hei:topsecret@127.0.0.1:2775?window=10', rate: '500/s,20000/h' }, key);
  await setClubTransport(db, club.id, { channel: 'sms', role: 'secondary', url: 'https://gw.test/send?header.X-Key=k2' }, key);
  await setClubTransport(db, club.id, { channel: 'email', url: 'smtp://mailer:mailpw@127.0.0.1:2525?pool=2' }, key);
  const { rows } = await db.query<{ url_encrypted: string }>(`SELECT url_encrypted FROM transport_configs WHERE loyalty_club_id = $1`, [club.id]);
  assert.equal(rows.length, 3);
  assert.ok(rows.every((r) => r.url_encrypted.startsWith('v1.') && !/topsecret|mailpw|X-Key=k2|127\.0\.0\.1/.test(r.url_encrypted)));
  const s = await redactedSettings(db, club.id, key);
  assert.deepEqual(s, {
    sms: {
      transport: 'smpp',
      url: 'smpp://hei:***@127.0.0.1:2775?window=10',
      rate: '500/s,20000/h',
      secondary: { transport: 'http-sms', url: 'https://gw.test/send?header.X-Key=***', rate: null },
    },
    email: { transport: 'smtp', url: 'smtp://mailer:***@127.0.0.1:2525?pool=2', rate: null, secondary: null },
    push: { transport: 'outbox', url: null, rate: null, secondary: null },
  });
  assert.ok(!JSON.stringify(s).includes('topsecret'));
  // Another process key: shown as unreadable, never an error or clear text.
  const other = await redactedSettings(db, club.id, keyFromText('another key'));
  assert.equal(other.sms.transport, 'unreadable');
  assert.deepEqual(other.sms.secondary, { transport: 'unreadable', url: null, rate: null });
  assert.equal(await resetClubTransport(db, club.id, 'sms'), 2);
  assert.equal((await redactedSettings(db, club.id, key)).sms.transport, 'outbox');
  await assert.rejects(setClubTransport(db, club.id, { channel: 'sms', url: 'smpp://a:b@h', rate: 'lots' }, key), /invalid rate/);
});

test('a club’s configured SMPP transport sends, rate-limited and with failover; receipts reach the sink', async () => {
  const peer = await startSmppPeer({ receipt: () => 'DELIVRD' });
  const backup = await startSmppPeer();
  const club = await newClub();
  // The directory decrypts with the process key (HEI_SECRET_KEY or the data-folder key file).
  await setClubTransport(db, club.id, { channel: 'sms', url: `smpp://hei:secret@127.0.0.1:${peer.port}?window=20`, rate: '1000/s' });
  await setClubTransport(db, club.id, { channel: 'sms', role: 'secondary', url: `smpp://hei:secret@127.0.0.1:${backup.port}` });
  const built = await loadClubTransports(db, club.id);
  assert.ok(built.sms instanceof FailoverTransport);
  assert.equal(built.email, undefined);
  await built.sms!.close();

  const reports: [number, DeliveryReport[]][] = [];
  setReportSink(async (clubId, r) => void reports.push([clubId, r]));
  const dir = new TransportDirectory(db, { recheckMs: 0 });
  const t = (await dir.get(club.id, 'sms'))!;
  assert.equal(await dir.get(club.id, 'push'), null);
  assert.equal(await dir.get(club.id, 'sms'), t, 'same instance while the configuration is unchanged');
  const r = await t.send([sms('Hei fra klubben')]);
  assert.equal(r[0].status, 'sent');
  for (let i = 0; i < 50 && !reports.length; i++) await sleep(20);
  assert.equal(reports[0][0], club.id);
  assert.equal(reports[0][1][0].providerId, (r[0] as any).providerId);

  // A changed configuration is picked up: the old transport is closed, a new one built.
  await sleep(5); // updated_at must move
  await setClubTransport(db, club.id, { channel: 'sms', url: `smpp://hei:secret@127.0.0.1:${backup.port}`, rate: '10/s' });
  await resetClubTransport(db, club.id, 'sms');
  await setClubTransport(db, club.id, { channel: 'sms', url: `smpp://hei:secret@127.0.0.1:${backup.port}`, rate: '10/s' });
  const t2 = (await dir.get(club.id, 'sms'))!;
  assert.notEqual(t2, t);
  assert.ok(t2 instanceof RateLimitedTransport);
  assert.equal((await t2.send([sms('to backup')]))[0].status, 'sent');
  assert.equal(backup.submitted.at(-1)!.text, 'to backup');
  await dir.close();
  setReportSink(null);
  await peer.close();
  await backup.close();
});

test('CLI: hei transports set / list / reset (secrets never printed)', { timeout: 120_000 }, () => {
  const env: NodeJS.ProcessEnv = { ...process.env, HEI_SECRET_KEY: 'cli-test-key' };
  if (!usingPostgres()) env.HEI_DATA_DIR = mkdtempSync(join(tmpdir(), 'hei-cli-'));
  const hei = (...args: string[]) => {
    const r = spawnSync(process.execPath, ['bin/hei.js', ...args], { env, encoding: 'utf8' });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  const slug = `cli-${randomBytes(4).toString('hex')}`;
  assert.equal(hei('clubs', 'create', '--slug', slug, '--name', 'CLI Mall').code, 0);
  let r = hei('transports', 'set', '--club', slug, '--channel', 'sms', '--url', 'smpp://hei:pw-secret@127.0.0.1:2775?window=100', '--rate', '500/s,20000/h');
  assert.equal(r.code, 0, r.err);
  assert.ok(!r.out.includes('pw-secret'));
  assert.match(r.out, /smpp:\/\/hei:\*\*\*@127\.0\.0\.1:2775/);
  r = hei('transports', 'set', '--club', slug, '--channel', 'sms', '--secondary', '--url', 'https://gw.test/send?header.Authorization=Bearer%20tok-secret');
  assert.equal(r.code, 0, r.err);
  r = hei('transports', 'set', '--club', slug, '--channel', 'push', '--secondary', '--url', 'webpush:?subject=mailto:a@b.test&public_key=P&private_key=K');
  assert.equal(r.code, 2);
  assert.match(r.err, /set a primary push transport first/);
  r = hei('transports', 'set', '--club', slug, '--channel', 'push', '--url', 'fcm:?project=p&credentials=/nonexistent/sa.json');
  assert.equal(r.code, 2);
  assert.match(r.err, /cannot read the FCM credentials file/);
  r = hei('transports', 'set', '--club', slug, '--channel', 'email', '--url', 'smpp://a:b@h');
  assert.equal(r.code, 2);
  assert.match(r.err, /sms transport, not email/);
  r = hei('transports', 'list', '--club', slug);
  assert.equal(r.code, 0, r.err);
  assert.ok(!/pw-secret|tok-secret/.test(r.out));
  assert.match(r.out, /^sms\tprimary\tsmpp:\/\/hei:\*\*\*@127\.0\.0\.1:2775\?window=100\trate 500\/s,20000\/h$/m);
  assert.match(r.out, /^sms\tsecondary\thttps:\/\/gw\.test\/send\?header\.Authorization=\*\*\*$/m);
  assert.match(r.out, /^email\tprimary\toutbox$/m);
  r = hei('transports', 'reset', '--club', slug, '--channel', 'sms');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /back to the outbox/);
  r = hei('transports', 'list', '--club', slug, '--json');
  assert.equal(JSON.parse(r.out).sms.transport, 'outbox');
  const dataDir = env.HEI_DATA_DIR;
  if (dataDir) assert.throws(() => readFileSync(join(dataDir, 'secret.key')), 'HEI_SECRET_KEY set: no key file written');
});
