// SMTP adapter against a real SMTP server (smtp-server), parsing what it receives (mailparser).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSmtpPeer } from './smtp-peer.ts';
import { SmtpTransport } from '../../src/transports/smtp.ts';
import { email, sendUntilFinal } from './fixtures.ts';

const peer = await startSmtpPeer();
const transport = new SmtpTransport({ host: '127.0.0.1', port: peer.port, user: 'mailer', password: 'pw', pool: 3 });
after(async () => {
  await transport.close();
  await peer.close();
});

test('From, subject, HTML with hidden preheader, plain-text alternative, Message-ID, one-click unsubscribe', async () => {
  const m = email({ to: 'anna@example.test', subject: 'Helgetilbud 😀', preheader: 'Bare denne helgen' });
  const [r] = await transport.send([m]);
  assert.equal(r.status, 'sent');
  const mail = peer.mails.find((x) => (x.to as any).text === 'anna@example.test')!;
  assert.equal(mail.from!.value[0].name, 'Infinity Mall');
  assert.equal(mail.from!.value[0].address, 'news@infinity-mall.test');
  assert.match(mail.headers.get('from') ? (mail.from as any).text : '', /^"?Infinity Mall"? <news@infinity-mall\.test>$/);
  assert.equal(mail.subject, 'Helgetilbud 😀');
  assert.equal(mail.text!.trim(), 'Offers\n50% off');
  assert.match(mail.html as string, /<body><div style="display:none[^"]*">Bare denne helgen/);
  assert.match(mail.html as string, /<h1>Offers<\/h1>/);
  assert.equal(mail.messageId, `<hei.${m.sendingId}.${m.dispatchId}@infinity-mall.test>`);
  assert.equal(r.status === 'sent' && r.providerId, mail.messageId);
  // raw header lines: mailparser folds List-* headers into a structured `list` entry
  const raw = (name: string) => mail.headerLines.find((h) => h.key === name)?.line.replace(/^[^:]+:\s*/, '');
  assert.equal(raw('list-unsubscribe-post'), 'List-Unsubscribe=One-Click');
  assert.equal(raw('list-unsubscribe'), `<https://hei.test/u/${m.dispatchId}>`);
});

test('RFC 8058: one-click only with an https unsubscribe URI; plain http keeps just the List-Unsubscribe link', async () => {
  const m = email({ to: 'carl@example.test', unsubscribeUrl: 'http://hei.test/u/1' });
  assert.equal((await transport.send([m]))[0].status, 'sent');
  const mail = peer.mails.find((x) => (x.to as any).text === 'carl@example.test')!;
  const raw = (name: string) => mail.headerLines.find((h) => h.key === name)?.line.replace(/^[^:]+:\s*/, '');
  assert.equal(raw('list-unsubscribe'), '<http://hei.test/u/1>');
  assert.equal(raw('list-unsubscribe-post'), undefined);
});

test('no unsubscribe headers on non-marketing mail; From without a name', async () => {
  const m = email({ to: 'bob@example.test', marketing: false, fromName: null, preheader: null, html: '<p>Receipt</p>' });
  assert.equal((await transport.send([m]))[0].status, 'sent');
  const mail = peer.mails.find((x) => (x.to as any).text === 'bob@example.test')!;
  assert.equal(mail.headerLines.some((h) => h.key.startsWith('list-unsubscribe')), false);
  assert.equal(mail.from!.value[0].name, '');
  assert.equal(mail.html, '<p>Receipt</p>');
});

test('4xx is retryable, 5xx permanent, 550/551/553 hard bounces are gone', async () => {
  peer.rcpt = (a) =>
    ({
      'busy@example.test': { code: 451, message: 'Try again later' },
      'full@example.test': { code: 452, message: 'Mailbox full' },
      'unknown@example.test': { code: 550, message: '5.1.1 User unknown' },
      'moved@example.test': { code: 551, message: 'User not local' },
      'bad@example.test': { code: 553, message: 'Mailbox name not allowed' },
      'policy@example.test': { code: 554, message: 'Rejected by policy' },
    })[a];
  const to = ['busy', 'full', 'unknown', 'moved', 'bad', 'policy', 'ok'].map((n) => `${n}@example.test`);
  const r = await transport.send(to.map((t) => email({ to: t })));
  peer.rcpt = () => undefined;
  assert.deepEqual(
    r.map((x) => [x.status, x.status === 'permanent' ? Boolean(x.gone) : null]),
    [['retryable', null], ['retryable', null], ['permanent', true], ['permanent', true], ['permanent', true], ['permanent', false], ['sent', null]],
  );
  assert.match((r[2] as any).error, /550/);
});

test('a pool of connections carries a batch; server down → retryable, then sent when back', async () => {
  const before = peer.connections;
  const batch = Array.from({ length: 60 }, (_, i) => email({ to: `pool${i}@example.test` }));
  const r = await transport.send(batch);
  assert.ok(r.every((x) => x.status === 'sent'));
  assert.ok(peer.connections - before <= 3, `connections opened: ${peer.connections - before}`);

  // A transport pointed at a port nobody listens on yet.
  const late = await startSmtpPeer();
  const port = late.port;
  await late.close();
  const t = new SmtpTransport({ host: '127.0.0.1', port, user: 'mailer', password: 'pw', pool: 2, timeoutMs: 1000 });
  const first = await t.send([email({ to: 'late@example.test' })]);
  assert.equal(first[0].status, 'retryable');
  const back = await startSmtpPeer(port);
  const { final, unfinished } = await sendUntilFinal(t, [email({ to: 'late@example.test' })]);
  assert.equal(unfinished, 0);
  assert.equal([...final.values()][0].status, 'sent');
  assert.equal(back.mails.length, 1);
  await t.close();
  await back.close();
});
