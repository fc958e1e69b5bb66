// The TLS variants of the transport URLs (smtps://, ssmpp://, https://) against real TLS peers on
// 127.0.0.1 with a self-signed certificate made here, trusted through the URL's `ca=FILE`.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { simpleParser, type ParsedMail } from 'mailparser';
import smpp from 'smpp';
import { checkTransportUrl, transportFromUrl } from '../../src/transports/config.ts';
import type { Transport } from '../../src/transports/transport.ts';
import { email, sms } from './fixtures.ts';
import { selfSignedCertificate } from '../helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'hei-tls-'));
const made = selfSignedCertificate(dir);
const skip = 'skip' in made ? made.skip : false;
const certFile = 'skip' in made ? join(dir, 'cert.pem') : made.certFile;
const key = 'skip' in made ? '' : made.key;
const cert = 'skip' in made ? '' : made.cert;

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});
const track = <T extends Transport>(t: T): T => (closers.push(() => t.close()), t);

test('ca: must be an existing PEM file, only on smpp, http-sms and smtp URLs', { skip }, () => {
  assert.doesNotThrow(() => checkTransportUrl(`smtps://127.0.0.1:465?ca=${encodeURIComponent(certFile)}`, 'email'));
  assert.doesNotThrow(() => checkTransportUrl(`ssmpp://hei:pw@127.0.0.1?ca=${encodeURIComponent(certFile)}`, 'sms'));
  assert.doesNotThrow(() => checkTransportUrl(`https://gw.example.test/send?ca=${encodeURIComponent(certFile)}`, 'sms'));
  assert.throws(() => checkTransportUrl(`smtps://127.0.0.1:465?ca=${encodeURIComponent(join(dir, 'missing.pem'))}`, 'email'), /ca file .*missing\.pem not found/);
  assert.throws(() => checkTransportUrl(`smtps://127.0.0.1:465?ca=`, 'email'), /ca file \(empty\) not found/);
  assert.throws(() => checkTransportUrl(`smtps://127.0.0.1:465?ca=${encodeURIComponent(dir)}`, 'email'), /not found or not readable/);
  const notPem = join(dir, 'not.pem');
  writeFileSync(notPem, 'hello');
  assert.throws(() => checkTransportUrl(`https://gw.example.test/send?ca=${encodeURIComponent(notPem)}`, 'sms'), /holds no PEM certificate/);
  assert.throws(() => checkTransportUrl(`webpush:?subject=mailto:a@b.c&public_key=x&private_key=y&ca=${encodeURIComponent(certFile)}`, 'push'), /takes no ca parameter/);
});

// ---- smtps:// ------------------------------------------------------------------------------------

async function startSmtpsPeer() {
  const mails: ParsedMail[] = [];
  const server = new SMTPServer({
    secure: true,
    key,
    cert,
    logger: false,
    onAuth: (auth, _s, cb) => (auth.username === 'mailer' && auth.password === 'pw' ? cb(null, { user: 'mailer' }) : cb(new Error('bad credentials'))),
    onData: (stream, _s, cb) => void simpleParser(stream).then((m) => (mails.push(m), cb()), cb),
  });
  server.on('error', () => {}); // a client refusing our certificate aborts its handshake
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.server.address() as AddressInfo).port, mails };
}

test('smtps:// with ca: the message arrives over implicit TLS', { skip }, async () => {
  const peer = await startSmtpsPeer();
  const t = track(transportFromUrl(`smtps://mailer:pw@127.0.0.1:${peer.port}?pool=1&ca=${encodeURIComponent(certFile)}`, 'email'));
  const m = email({ to: 'tls@example.test', subject: 'Over TLS' });
  const [r] = await t.send([m]);
  assert.equal(r.status, 'sent', JSON.stringify(r));
  assert.equal(peer.mails.length, 1);
  assert.equal((peer.mails[0].to as any).text, 'tls@example.test');
  assert.equal(peer.mails[0].subject, 'Over TLS');
  assert.equal(peer.mails[0].messageId, `<hei.${m.sendingId}.${m.dispatchId}@infinity-mall.test>`);
});

test('smtps:// without ca: a certificate error as a result, nothing delivered', { skip }, async () => {
  const peer = await startSmtpsPeer();
  const t = track(transportFromUrl(`smtps://mailer:pw@127.0.0.1:${peer.port}?pool=1`, 'email'));
  const [r] = await t.send([email({ to: 'untrusted@example.test' })]);
  assert.ok(r.status === 'retryable' || r.status === 'permanent', JSON.stringify(r));
  assert.match(r.error, /self[- ]signed|certificate/i);
  assert.equal(peer.mails.length, 0);
});

// ---- https:// SMS gateway ----------------------------------------------------------------------

async function startHttpsGateway() {
  const received: { path: string; headers: any; body: any }[] = [];
  const server = createServer({ key, cert }, (req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      received.push({ path: req.url!, headers: req.headers, body: JSON.parse(raw) });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: `gw-${received.length}` }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));
  return { port: (server.address() as AddressInfo).port, received };
}

test('https:// gateway with ca: the JSON body arrives; the ca parameter is not posted', { skip }, async () => {
  const gw = await startHttpsGateway();
  const t = track(transportFromUrl(`https://127.0.0.1:${gw.port}/send?x=1&header.Authorization=Bearer%20k&response_id=id&ca=${encodeURIComponent(certFile)}`, 'sms'));
  const m = sms('Hei over TLS', { to: '4791234567', from: { type: 'alphanumeric', value: 'Mall' } });
  const [r] = await t.send([m]);
  assert.deepEqual(r, { status: 'sent', providerId: 'gw-1', segments: 1 });
  assert.equal(gw.received.length, 1);
  assert.equal(gw.received[0].path, '/send?x=1');
  assert.equal(gw.received[0].headers.authorization, 'Bearer k');
  assert.deepEqual(gw.received[0].body, { to: '4791234567', from: 'Mall', text: 'Hei over TLS', reference: String(m.dispatchId) });
});

test('https:// gateway without ca: retryable, nothing posted', { skip }, async () => {
  const gw = await startHttpsGateway();
  const t = track(transportFromUrl(`https://127.0.0.1:${gw.port}/send`, 'sms'));
  const [r] = await t.send([sms('Untrusted', { to: '4791234568' })]);
  assert.equal(r.status, 'retryable', JSON.stringify(r));
  assert.match(r.status === 'retryable' ? r.error : '', /gateway unreachable: .*(self[- ]signed|certificate)/i);
  assert.equal(gw.received.length, 0);
});

// ---- ssmpp:// ------------------------------------------------------------------------------------

async function startSsmppPeer() {
  const peer = { port: 0, binds: 0, submitted: [] as { destination: string; text: string }[] };
  // The `smpp` package serves TLS when given key and cert (a tls.Server underneath).
  const server = smpp.createServer({ key, cert }, (session: any) => {
    session.on('error', () => {});
    session.on('bind_transceiver', (pdu: any) => {
      const ok = pdu.system_id === 'hei' && pdu.password === 'secret';
      if (ok) peer.binds++;
      session.send(pdu.response(ok ? { system_id: 'peer' } : { command_status: smpp.ESME_RBINDFAIL }));
    });
    session.on('submit_sm', (pdu: any) => {
      const sm = pdu.short_message ?? {};
      peer.submitted.push({ destination: pdu.destination_addr, text: String(sm.message ?? '') });
      session.send(pdu.response({ message_id: `m${peer.submitted.length}` }));
    });
    session.on('unbind', (pdu: any) => {
      session.send(pdu.response());
      session.close();
    });
  });
  server.on('tlsClientError', () => {}); // a client refusing our certificate
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  peer.port = (server.address() as AddressInfo).port;
  closers.push(async () => {
    for (const s of [...server.sessions]) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return peer;
}

test('ssmpp:// with ca: binds and submits over TLS', { skip }, async () => {
  const peer = await startSsmppPeer();
  const t = track(transportFromUrl(`ssmpp://hei:secret@127.0.0.1:${peer.port}?ca=${encodeURIComponent(certFile)}`, 'sms'));
  const [r] = await t.send([sms('Hei SMPP over TLS', { to: '4791000009' })]);
  assert.deepEqual(r, { status: 'sent', providerId: 'm1', segments: 1 });
  assert.equal(peer.binds, 1);
  assert.deepEqual(peer.submitted, [{ destination: '4791000009', text: 'Hei SMPP over TLS' }]);
});

test('ssmpp:// without ca: never binds, the message stays retryable', { skip }, async () => {
  const peer = await startSsmppPeer();
  const t = track(transportFromUrl(`ssmpp://hei:secret@127.0.0.1:${peer.port}?reconnect_max=1`, 'sms'));
  const [r] = await t.send([sms('Untrusted', { to: '4791000010' })]);
  assert.equal(r.status, 'retryable', JSON.stringify(r));
  assert.equal(peer.binds, 0);
  assert.equal(peer.submitted.length, 0);
});
