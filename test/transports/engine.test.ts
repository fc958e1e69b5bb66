// The adapters behind the delivery engine: a club configured with `setClubTransport` sends its
// sendings through SMPP and SMTP peers via the engine's resolver (registerClubTransports).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { setClubTransport } from '../../src/transports/config.ts';
import { registerClubTransports } from '../../src/transports/directory.ts';
import { EMAIL_CHANNEL, SMS_CHANNEL, dispatchesOf, insertMembers, startDeliveryApp, waitFor } from '../delivery/helpers.ts';
import { startSmppPeer } from './smpp-peer.ts';
import { startSmtpPeer } from './smtp-peer.ts';

process.env.HEI_SECRET_KEY ??= 'hei-test-suite-key';

async function createMessage(c: { request: (m: string, p: string, o?: any) => Promise<any> }, service: string, message: Record<string, unknown>) {
  const res = await c.request('POST', `/v1/messages/${service}`, { body: { message: { name: 'Transports test', ...message } } });
  assert.ok(res.status === 200 || res.status === 201, res.text);
  return { sendingId: res.body.message.latest_sending?.id as number | undefined };
}
const ctx = await startDeliveryApp();
const unregister = registerClubTransports(ctx.db, { recheckMs: 0 });
let throttled = 0;
const smpp = await startSmppPeer({ status: (s) => (s.text.includes('Anna') && throttled++ < 2 ? 0x58 : 0) });
const smtp = await startSmtpPeer();
after(async () => {
  await unregister();
  await smpp.close();
  await smtp.close();
});

test('a sending goes out through the club’s SMPP and SMTP transports; throttling waits, a hard bounce marks the member', async () => {
  const c = await ctx.club();
  await setClubTransport(ctx.db, c.club.id, { channel: 'sms', url: `smpp://hei:secret@127.0.0.1:${smpp.port}?window=10`, rate: '1000/s' });
  await setClubTransport(ctx.db, c.club.id, { channel: 'email', url: `smtp://mailer:pw@127.0.0.1:${smtp.port}?pool=2` });
  smtp.rcpt = (a) => (a === 'nobody@example.com' ? { code: 550, message: '5.1.1 User unknown' } : undefined);
  const [anna, bjorn, nobody] = await insertMembers(ctx.db, c.club.id, [
    { first_name: 'Anna', msisdn: '4791000001', city: 'Oslo', consents: ['sms_marketing'] },
    { first_name: 'Bjørn', email: 'bjorn@example.com', city: 'Oslo', consents: ['email_marketing'] },
    { first_name: 'Nobody', email: 'nobody@example.com', city: 'Oslo', consents: ['email_marketing'] },
  ]);
  const { sendingId } = await createMessage(c, 'campaigns', {
    channels: [SMS_CHANNEL('Hei {{first_name}} {på} deg'), EMAIL_CHANNEL()],
    sending: { schedule: { type: 'immediate' }, audience: { type: 'inline', conditions: [{ condition_group: 'member_properties', field: 'city', operator: 'match', value: 'Oslo' }] } },
  });
  await waitFor('all dispatches final', async () => {
    await ctx.engine.drain();
    const ds = await dispatchesOf(ctx.db, sendingId!);
    return ds.length === 3 && ds.every((d) => !['pending', 'sending'].includes(d.status)) ? ds : null;
  });
  const ds = await dispatchesOf(ctx.db, sendingId!);
  const smsD = ds.find((d) => d.channel === 'sms')!;
  assert.equal(smsD.status, 'sent');
  assert.equal(smsD.member_id, anna);
  assert.equal(smpp.submitted.length, 1);
  assert.equal(smpp.submitted[0].text, 'Hei Anna {på} deg');
  assert.equal(smsD.provider_id, smpp.submitted[0].messageId);
  assert.ok(throttled >= 2, 'the peer throttled first');

  const ok = ds.find((d) => d.member_id === bjorn)!;
  assert.equal(ok.status, 'sent');
  assert.equal(smtp.mails.length, 1);
  assert.equal(smtp.mails[0].messageId, ok.provider_id);
  // A marketing e-mail through the engine carries the unsubscribe link; with this plain-http public
  // base no one-click header (RFC 8058 wants https; test/transports/smtp.test.ts covers https).
  const header = (key: string) => smtp.mails[0].headerLines.find((h) => h.key === key)?.line.replace(/^[^:]+:\s*/, '');
  assert.match(header('list-unsubscribe') ?? '', /^<https?:\/\/[^>]+\/v1\/unsubscribe\/[0-9a-z]+\.[A-Za-z0-9_-]{22}>$/);
  assert.equal(header('list-unsubscribe-post'), undefined);
  const bounced = ds.find((d) => d.member_id === nobody)!;
  assert.equal(bounced.status, 'undeliverable');
  const { rows } = await ctx.db.query('SELECT email_status FROM members WHERE id = $1', [nobody]);
  assert.equal(rows[0].email_status, 'hard_bounced');
});

// The case: the SMSC goes away for 30 s in the middle of a sending (HEI_TEST_OUTAGE_MS to
// shorten it locally). Nothing is lost: every member gets the SMS once the peer is back.
test('SMPP peer down for a while mid-sending: all dispatches sent after it returns, none failed', { timeout: 180_000 }, async () => {
  const outageMs = Number(process.env.HEI_TEST_OUTAGE_MS ?? 30_000);
  let downAt = 0;
  const peer = await startSmppPeer({
    delayMs: 2,
    status: (_s, n) => {
      if (n === 60 && !downAt) {
        downAt = Date.now();
        setImmediate(() => void peer.down().then(() => setTimeout(() => void peer.up(), outageMs)));
      }
      return 0;
    },
  });
  after(() => peer.close());
  const c = await ctx.club();
  await setClubTransport(ctx.db, c.club.id, { channel: 'sms', url: `smpp://hei:secret@127.0.0.1:${peer.port}?window=5&reconnect_max=2` });
  await insertMembers(
    ctx.db,
    c.club.id,
    Array.from({ length: 200 }, (_, i) => ({ first_name: `M${i}`, msisdn: String(4792000000 + i), city: 'Oslo', consents: ['sms_marketing'] })),
  );
  const saved = { ...ctx.engine.settings };
  Object.assign(ctx.engine.settings, { batchSize: 20, retryBaseMs: 500, retryMaxMs: 2000 });
  after(() => void Object.assign(ctx.engine.settings, { batchSize: saved.batchSize, retryBaseMs: saved.retryBaseMs, retryMaxMs: saved.retryMaxMs }));
  const { sendingId } = await createMessage(c, 'campaigns', {
    channels: [SMS_CHANNEL('Hei {{first_name}}')],
    sending: { schedule: { type: 'immediate' }, audience: { type: 'inline', conditions: [{ condition_group: 'member_properties', field: 'city', operator: 'match', value: 'Oslo' }] } },
  });
  const ds = await waitFor(
    'all 200 dispatches final',
    async () => {
      await ctx.engine.drain();
      const rows = await dispatchesOf(ctx.db, sendingId!);
      return rows.length === 200 && rows.every((d) => !['pending', 'sending'].includes(d.status)) ? rows : null;
    },
    outageMs + 60_000,
    100,
  );
  assert.ok(downAt > 0, 'the peer went down mid-sending');
  assert.ok(Date.now() - downAt >= outageMs, 'finished only after the peer came back');
  assert.deepEqual([...new Set(ds.map((d) => d.status))], ['sent']);
  const delivered = new Set(peer.submitted.map((s) => s.destination));
  assert.equal(delivered.size, 200);
  assert.ok(peer.binds >= 2, 'reconnected');
});
