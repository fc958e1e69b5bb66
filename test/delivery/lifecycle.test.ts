// The whole lifecycle driven through the API and the background worker, for each schedule type:
// scheduled → preparing → prepared → transmitting → transmitted, counters, stats, the outbox file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EMAIL_CHANNEL, SMS_CHANNEL, createMessage, dispatchesOf, insertMembers, showSending, startDeliveryApp, waitFor } from './helpers.ts';

const ctx = await startDeliveryApp();
ctx.app.hei.worker.start();

async function lifecycle(schedule: Record<string, unknown>, expectedAt: (createdAt: number) => number) {
  const c = await ctx.club();
  const [a, b] = await insertMembers(ctx.db, c.club.id, [
    { first_name: 'Anna', msisdn: '4791000001', city: 'Oslo', consents: ['sms_marketing'] },
    { first_name: 'Bjørn', email: 'bjorn@example.com', city: 'Oslo', consents: ['email_marketing'] },
    { first_name: 'Carl', msisdn: '4791000003', city: 'Bergen', consents: ['sms_marketing'] },
  ]);
  const before = Date.now();
  const { sendingId } = await createMessage(c, 'campaigns', {
    channels: [SMS_CHANNEL('Hei {{first_name}}, {{offer}}'), EMAIL_CHANNEL()],
    sending: {
      schedule,
      properties: { offer: '10% off' },
      audience: { type: 'inline', conditions: [{ condition_group: 'member_properties', field: 'city', operator: 'match', value: 'Oslo' }] },
      recipients: [{ email: 'guest@example.com', properties: { first_name: 'Guest' } }],
    },
  });
  assert.ok(sendingId);
  const created = await showSending(c, 'campaigns', sendingId!);
  // An immediate sending may already be on its way when we look; a later one is prepared ahead
  // (up to 5 minutes before its time, DECISIONS "Execution") but waits to transmit.
  if (schedule.type === 'immediate') assert.ok(['scheduled', 'preparing', 'prepared', 'transmitting', 'transmitted'].includes(created.status), created.status);
  else assert.ok(['scheduled', 'preparing', 'prepared'].includes(created.status), created.status);
  const due = expectedAt(before);

  const done = await waitFor('transmitted', async () => {
    const s = await showSending(c, 'campaigns', sendingId!);
    return s.status === 'transmitted' ? s : null;
  });
  // Transmission started within a second of its time (never before it).
  const { rows } = await ctx.db.query('SELECT scheduled_at, preparing_started_at, transmitting_started_at, transmitted_at FROM sendings WHERE id = $1', [sendingId]);
  const started = rows[0].transmitting_started_at.getTime();
  assert.ok(started >= rows[0].scheduled_at.getTime(), 'not transmitted before its time');
  assert.ok(started - due < 1000 + 150, `transmission started ${started - due} ms after its time`);
  assert.ok(done.transmitted_at);

  assert.equal(done.members_count, 2);
  assert.equal(done.recipients_count, 1);
  assert.equal(done.dispatches_count, 3);
  assert.equal(done.stats.sent, 3);

  const ds = await dispatchesOf(ctx.db, sendingId!);
  assert.deepEqual(ds.map((d) => [d.recipient_key, d.channel, d.status]).sort(), [
    ['email:guest@example.com', 'email', 'sent'],
    [`member:${a}`, 'sms', 'sent'],
    [`member:${b}`, 'email', 'sent'],
  ].sort());
  for (const d of ds) {
    assert.equal(d.attempts, 1);
    assert.ok(d.provider_id);
    assert.ok(d.sent_at);
  }

  const lines = (await ctx.outbox()).filter((l) => l.sending_id === sendingId);
  assert.equal(lines.length, 3);
  const sms = lines.find((l) => l.channel === 'sms')!;
  assert.deepEqual(sms.recipient, { memberId: a, msisdn: '4791000001', email: null, pushToken: null });
  assert.equal((sms.content as any).text, 'Hei Anna, 10% off');
  assert.deepEqual((sms.content as any).from, { type: 'alphanumeric', value: 'Infinity' });
  const guest = lines.find((l) => l.recipient.email === 'guest@example.com')!;
  assert.equal((guest.content as any).subject, 'Hello Guest');
  assert.match((guest.content as any).html, /<p>Hei Guest<\/p>/);
  assert.equal(guest.marketing, true);
  return sendingId!;
}

test('immediate sending: prepared and transmitted at once, recorded on every dispatch and in the outbox', async () => {
  await lifecycle({ type: 'immediate' }, (t) => t);
});

test('absolute sending starts at its time, within a second', async () => {
  const at = new Date(Date.now() + 2500);
  await lifecycle({ type: 'absolute', at: at.toISOString() }, () => at.getTime());
});

test('relative sending starts after its delay, within a second', async () => {
  await lifecycle({ type: 'relative', in: 'PT2S' }, (t) => t + 2000);
});

test('/metrics counts dispatches by channel and outcome', async () => {
  const res = await ctx.fetch('GET', '/metrics');
  assert.equal(res.status, 200);
  assert.match(res.text, /hei_dispatches_total\{channel="sms",outcome="sent"\} \d+/);
  assert.match(res.text, /hei_dispatches_total\{channel="email",outcome="sent"\} \d+/);
});
