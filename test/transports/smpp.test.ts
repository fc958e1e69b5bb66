// SMPP adapter against a real SMPP server (the `smpp` package in server mode).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { SmppTransport } from '../../src/transports/smpp.ts';
import type { DeliveryReport } from '../../src/transports/transport.ts';
import { startSmppPeer, type SmppPeer } from './smpp-peer.ts';
import { sendUntilFinal, sleep, sms } from './fixtures.ts';

const opened: { close(): Promise<void> }[] = [];
after(async () => {
  for (const o of opened.reverse()) await o.close();
});

async function setup(peerOpts: Parameters<typeof startSmppPeer>[0] = {}, transportOpts: Partial<ConstructorParameters<typeof SmppTransport>[0]> = {}) {
  const peer = await startSmppPeer(peerOpts);
  const reports: DeliveryReport[] = [];
  const t = new SmppTransport({
    host: '127.0.0.1',
    port: peer.port,
    systemId: 'hei',
    password: 'secret',
    reconnectMinMs: 50,
    reconnectMaxMs: 400,
    onReports: async (r) => void reports.push(...r),
    ...transportOpts,
  });
  opened.push(peer, t);
  return { peer, t, reports };
}

const byDispatch = (peer: SmppPeer, destination: string) => peer.submitted.filter((s) => s.destination === destination);

test('binds as transceiver; alphanumeric sender is TON 5 / NPI 0, international TON 1 / NPI 1', async () => {
  const { peer, t } = await setup();
  const r = await t.send([
    sms('Hello', { to: '4791000001', from: { type: 'alphanumeric', value: 'InfinityMal' } }),
    sms('Hello', { to: '+4791000002', from: { type: 'international', value: '+4790000000' } }),
  ]);
  assert.deepEqual(r.map((x) => x.status), ['sent', 'sent']);
  assert.equal(peer.binds, 1);
  const [a, b] = [byDispatch(peer, '4791000001')[0], byDispatch(peer, '4791000002')[0]];
  assert.deepEqual([a.sourceTon, a.sourceNpi, a.source], [5, 0, 'InfinityMal']);
  assert.deepEqual([b.sourceTon, b.sourceNpi, b.source], [1, 1, '4790000000']);
  assert.equal(a.registeredDelivery, 1);
});

test('encodings and segmentation: GSM-7 with extension characters, emoji, 1 / 2 / 7 parts', async () => {
  const { peer, t } = await setup();
  const gsmExt = 'Tilbud {50%} på [alt] ~ nå | 100€ ^ \\ ÆØÅ @';
  const two = 'a'.repeat(159) + '€'; // 161 septets: two parts
  const seven = 'Lorem ipsum dolor sit amet. '.repeat(36).slice(0, 1000); // 1000 septets
  const emoji = 'Hei 😀 '.repeat(12); // 72 UTF-16 units: two UCS-2 parts
  const r = await t.send([sms(gsmExt, { to: '4792000001' }), sms(two, { to: '4792000002' }), sms(seven, { to: '4792000007' }), sms(emoji, { to: '4792000003' })]);
  assert.deepEqual(r.map((x) => x.status === 'sent' && x.segments), [1, 2, 7, 2]);

  const [one] = byDispatch(peer, '4792000001');
  assert.equal(one.dataCoding, 0);
  assert.equal(one.udh, null);
  assert.equal(one.esmClass & 0x40, 0);
  assert.equal(one.text, gsmExt);

  for (const [to, total, text, coding] of [
    ['4792000002', 2, two, 0],
    ['4792000007', 7, seven, 0],
    ['4792000003', 2, emoji, 8],
  ] as const) {
    const parts = byDispatch(peer, to);
    assert.equal(parts.length, total, to);
    const ref = parts[0].udh![2];
    parts.forEach((p, i) => {
      assert.equal(p.esmClass & 0x40, 0x40);
      assert.equal(p.dataCoding, coding);
      // IE 00 (concatenation, 8-bit ref), length 3, ref, total, sequence
      assert.deepEqual([...p.udh!], [0x00, 0x03, ref, total, i + 1]);
    });
    assert.equal(parts.map((p) => p.text).join(''), text);
  }
  const sevenParts = byDispatch(peer, '4792000007');
  assert.ok(sevenParts.slice(0, 6).every((p) => p.text.length === 153));
});

test('delivery receipts are parsed into reports on the provider id', async () => {
  const { t, reports } = await setup({ receipt: (s) => (s.destination === '4793000002' ? 'UNDELIV' : s.destination === '4793000003' ? 'EXPIRED' : 'DELIVRD') });
  const r = await t.send([sms('a', { to: '4793000001' }), sms('b', { to: '4793000002' }), sms('c', { to: '4793000003' }), sms('x'.repeat(200), { to: '4793000004' })]);
  const ids = r.map((x) => (x.status === 'sent' ? x.providerId : null));
  for (let i = 0; i < 50 && reports.length < 5; i++) await sleep(20);
  const status = (id: string | null) => reports.filter((x) => x.providerId === id).map((x) => x.status);
  assert.deepEqual(status(ids[0]), ['delivered']);
  assert.deepEqual(status(ids[1]), ['undeliverable']);
  assert.deepEqual(status(ids[2]), ['failed']);
  // both parts' receipts land on the first part's id, which is the providerId
  assert.deepEqual(status(ids[3]), ['delivered', 'delivered']);
  assert.match(reports.find((x) => x.providerId === ids[1])!.error!, /UNDELIV/);
  assert.equal(reports[0].at.toISOString(), '2026-11-27T06:01:00.000Z');
});

test('ESME_RTHROTTLED and ESME_RMSGQFUL are retryable, an invalid destination is permanent', async () => {
  const { t } = await setup({ status: (s) => ({ '4794000001': 0x58, '4794000002': 0x14, '4794000003': 0x0b })[s.destination] ?? 0 });
  const r = await t.send([sms('a', { to: '4794000001' }), sms('b', { to: '4794000002' }), sms('c', { to: '4794000003' }), sms('d', { to: '4794000004' })]);
  assert.deepEqual(r.map((x) => x.status), ['retryable', 'retryable', 'permanent', 'sent']);
  assert.match((r[0] as any).error, /0x58/);
  assert.match((r[1] as any).error, /0x14/);
  // throttling is "not yet": the engine waits retryAfterMs without using an attempt
  assert.equal((r[0] as any).retryAfterMs, 1000);
  assert.equal((r[1] as any).retryAfterMs, 1000);
});

test('a throttling peer: everything is sent once it lets up', async () => {
  let throttle = true;
  setTimeout(() => (throttle = false), 300);
  const { peer, t } = await setup({ status: () => (throttle ? 0x58 : 0) });
  const batch = Array.from({ length: 40 }, (_, i) => sms(`m${i}`, { to: `47950000${String(i).padStart(2, '0')}` }));
  const { final, retryable, unfinished } = await sendUntilFinal(t, batch, { batchSize: 10, pauseMs: 50 });
  assert.equal(unfinished, 0);
  assert.ok(retryable > 0);
  assert.equal([...final.values()].filter((r) => r.status === 'sent').length, 40);
  assert.equal(new Set(peer.submitted.map((s) => s.destination)).size, 40);
});

test('peer down for a while mid-run, then back: results retryable, then all sent, nothing lost', async () => {
  const { peer, t } = await setup({}, { connectTimeoutMs: 100 });
  const batch = Array.from({ length: 300 }, (_, i) => sms(`hello ${i}`, { to: `4796${String(i).padStart(6, '0')}` }));
  let sentBatches = 0;
  const wrapped = {
    name: 'probe',
    close: async () => {},
    send: async (b: typeof batch) => {
      if (++sentBatches === 3) {
        await peer.down();
        setTimeout(() => void peer.up(), 1500);
      }
      return t.send(b);
    },
  };
  const started = Date.now();
  const { final, retryable, unfinished } = await sendUntilFinal(wrapped, batch, { batchSize: 25, pauseMs: 100 });
  assert.equal(unfinished, 0);
  assert.ok(retryable >= 25, `retryable answers while down: ${retryable}`);
  assert.ok(Date.now() - started >= 1400);
  assert.ok([...final.values()].every((r) => r.status === 'sent'));
  assert.deepEqual(new Set(peer.submitted.map((s) => s.destination)).size, 300);
  assert.ok(peer.binds >= 2, 'reconnected');
  assert.ok(t.isBound);
});

test('a window bounds the outstanding submit_sm', async () => {
  const { peer, t } = await setup({ delayMs: 20 }, { window: 5 });
  const r = await t.send(Array.from({ length: 60 }, (_, i) => sms(`w${i}`)));
  assert.ok(r.every((x) => x.status === 'sent'));
  assert.equal(peer.maxOutstanding, 5);
});

test('wrong credentials: no bind, messages retryable; enquire_link keeps a quiet session', async () => {
  const { t } = await setup({}, { password: 'wrong', connectTimeoutMs: 150 });
  const r = await t.send([sms('x')]);
  assert.equal(r[0].status, 'retryable');
  const ok = await setup({}, { enquireLinkMs: 100 });
  await ok.t.send([sms('x')]);
  await sleep(450);
  assert.ok(ok.t.isBound);
  assert.ok(ok.peer.enquireLinks >= 2, `enquire_link seen ${ok.peer.enquireLinks}`);
  assert.equal((await ok.t.send([sms('y')]))[0].status, 'sent');
});
