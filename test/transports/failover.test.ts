// Failover between two real SMPP servers, recovery after the cool-down, and the error-burst detector.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { SmppTransport } from '../../src/transports/smpp.ts';
import { ErrorBurstDetector, FailoverTransport } from '../../src/transports/failover.ts';
import type { SendResult } from '../../src/transports/transport.ts';
import { startSmppPeer } from './smpp-peer.ts';
import { sleep, sms } from './fixtures.ts';

const primaryPeer = await startSmppPeer();
const secondaryPeer = await startSmppPeer();
const smppTo = (port: number) => new SmppTransport({ host: '127.0.0.1', port, systemId: 'hei', password: 'secret', connectTimeoutMs: 100, reconnectMinMs: 50, reconnectMaxMs: 100 });
const t = new FailoverTransport(smppTo(primaryPeer.port), smppTo(secondaryPeer.port), { threshold: 3, cooldownMs: 400 });
after(async () => {
  await t.close();
  await primaryPeer.close();
  await secondaryPeer.close();
});

const batch = (n: number, tag: string) => Array.from({ length: n }, (_, i) => sms(`${tag} ${i}`));

test('traffic moves to the secondary after repeated primary failures, nothing lost, and back after recovery', async () => {
  let r = await t.send(batch(5, 'a'));
  assert.ok(r.every((x) => x.status === 'sent'));
  assert.equal(primaryPeer.submitted.length, 5);
  assert.equal(t.active, 'primary');

  await primaryPeer.down();
  // The batch that trips the threshold is re-sent on the secondary at once.
  r = await t.send(batch(5, 'b'));
  assert.ok(r.every((x) => x.status === 'sent'), JSON.stringify(r));
  assert.equal(t.active, 'secondary');
  assert.equal(secondaryPeer.submitted.filter((s) => s.text.startsWith('b ')).length, 5);

  r = await t.send(batch(5, 'c'));
  assert.ok(r.every((x) => x.status === 'sent'));
  assert.equal(secondaryPeer.submitted.filter((s) => s.text.startsWith('c ')).length, 5);

  // Cool-down over but the primary is still down: one probe failure sends traffic back at once.
  await sleep(450);
  assert.equal(t.active, 'primary');
  r = await t.send(batch(2, 'd'));
  assert.ok(r.every((x) => x.status === 'sent'));
  assert.equal(t.active, 'secondary');

  // The primary recovers; after the next cool-down it carries the traffic again.
  await primaryPeer.up();
  await sleep(450);
  r = await t.send(batch(5, 'e'));
  assert.ok(r.every((x) => x.status === 'sent'));
  assert.equal(primaryPeer.submitted.filter((s) => s.text.startsWith('e ')).length, 5);
  assert.equal(t.active, 'primary');
  const all = [...primaryPeer.submitted, ...secondaryPeer.submitted].map((s) => s.text);
  for (const tag of ['a', 'b', 'c', 'd', 'e']) assert.ok(all.some((x) => x.startsWith(`${tag} `)), tag);
});

test('permanent answers (a bad recipient) do not count as provider failures', async () => {
  const bad = await startSmppPeer({ status: () => 0x0b });
  const ok = await startSmppPeer();
  const f = new FailoverTransport(smppTo(bad.port), smppTo(ok.port), { threshold: 2, cooldownMs: 1000 });
  const r = await f.send(batch(6, 'p'));
  assert.ok(r.every((x) => x.status === 'permanent'));
  assert.equal(f.active, 'primary');
  assert.equal(ok.submitted.length, 0);
  await f.close();
  await bad.close();
  await ok.close();
});

test('error-burst detector: pauses a sending when most recent results are errors', () => {
  let now = 0;
  const d = new ErrorBurstDetector({ windowMs: 10_000, minSamples: 20, maxErrorRatio: 0.5, now: () => now });
  const sent: SendResult = { status: 'sent', providerId: 'x' };
  const err: SendResult = { status: 'retryable', error: 'SMPP connection down' };
  const gone: SendResult = { status: 'permanent', error: 'unknown user', gone: true };
  const waiting: SendResult = { status: 'retryable', error: 'rate limited', retryAfterMs: 10 };
  assert.equal(d.record(1, Array(10).fill(err)), false); // too few samples
  assert.equal(d.record(1, [...Array(30).fill(sent)]), false); // 10 / 40
  assert.equal(d.record(1, Array(40).fill(gone).concat(Array(40).fill(waiting))), false); // dead addresses and waits do not count
  assert.equal(d.record(1, Array(30).fill(err)), true); // 40 / 70
  assert.equal(d.record(1, Array(5).fill(err)), false); // after a pause, a fresh window: too few samples
  assert.equal(d.record(2, Array(30).fill(sent)), false); // per sending
  assert.equal(d.record(3, Array(15).fill(err)), false);
  now = 20_000; // older results leave the window
  assert.equal(d.record(3, Array(5).fill(err).concat(Array(20).fill(sent))), false);
  d.reset(1);
  assert.equal(d.record(1, Array(25).fill(err)), true);
  // A provider that is away ("come back in 250 ms") makes the sending wait, not pause.
  const away: SendResult = { status: 'retryable', error: 'SMPP connection down', retryAfterMs: 250 };
  assert.equal(d.record(4, Array(100).fill(away)), false);
});
