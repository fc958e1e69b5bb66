// Faults met by one in-process engine (the embedded store unless DATABASE_URL is set): the
// database cut at its interface, SMPP and SMTP peers throttling, refusing and vanishing, a full
// disk under the outbox (a tmpfs mounted by the test), and wall-clock steps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withFaults } from '../src/db/connection.ts';
import { deliveryEngineOf } from '../src/delivery/index.ts';
import { RECORD_GROUP } from '../src/delivery/transmit.ts';
import { SmppTransport } from '../src/transports/smpp.ts';
import { SmtpTransport } from '../src/transports/smtp.ts';
import { outboxPath } from '../src/transports/outbox.ts';
import { EMAIL_CHANNEL, SMS_CHANNEL, createMessage, insertMembers, insertSmsMembers, only, showSending, startDeliveryApp, waitFor } from '../test/delivery/helpers.ts';
import { startSmppPeer } from '../test/transports/smpp-peer.ts';
import { startSmtpPeer } from '../test/transports/smtp-peer.ts';
import { assertDelivered, sleep } from './support.ts';

const everyone = { type: 'inline', conditions: [{ condition_group: 'member_properties', field: 'city', operator: 'match', value: 'Oslo' }] };

// Log lines of the app, as pino writes them.
const logs: Array<{ at: number; level: number; msg: string }> = [];
const stream = { write: (line: string) => void logs.push({ at: Date.now(), ...(JSON.parse(line) as { level: number; msg: string }) }) };
let setDown: (down: boolean) => void = () => {};
const ctx = await startDeliveryApp({
  wrapDb: (db) => {
    const f = withFaults(db);
    setDown = f.setDown;
    return f.db;
  },
  logger: { level: 'info', stream },
});
const engine = deliveryEngineOf(ctx.app.hei);
engine.settings.batchSize = 200;
engine.settings.pollMs = 50;
ctx.app.hei.worker.start();
const WINDOW = RECORD_GROUP * engine.settings.concurrency;
const warnSince = (t: number) => logs.filter((l) => l.level >= 40 && l.at >= t);

async function sent(sendingId: number): Promise<number> {
  const { rows } = await ctx.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM dispatches WHERE sending_id = $1 AND status = 'sent'`, [sendingId]);
  return rows[0].n;
}

test('embedded store cut at the database interface: 503 with Retry-After, one warning, resumed within 5 s, nothing lost', { timeout: 120_000 }, async () => {
  const c = await ctx.club();
  const members = 4_000;
  await insertSmsMembers(ctx.db, c.club.id, members);
  const { sendingId } = await createMessage(c, 'generic', { channels: [SMS_CHANNEL()], sending: { schedule: { type: 'immediate' }, audience: everyone } });
  const id = sendingId!;
  await waitFor('transmission under way', async () => (await sent(id)) >= 400, 60_000, 5);
  // An import in progress too (members outside the sending's audience).
  const imported = Array.from({ length: 1_000 }, (_, i) => ({ properties: { msisdn: String(4791000000 + i), first_name: `i${i}`, city: 'Bergen' } }));
  const imp = await c.request('POST', `/v3/${c.club.slug}/members/imports`, { body: { import_id: 'during-outage', request_number: 1, members: imported } });
  assert.equal(imp.status, 201, imp.text);
  const down = Date.now();
  setDown(true);
  await sleep(500);
  const before = await sent(id);
  const res = await c.request('GET', `/v1/messages/generic/sendings/${id}`);
  assert.deepEqual([res.status, res.body], [503, { error: 'Service unavailable' }]);
  assert.ok(Number(res.headers.get('retry-after')) > 0);
  assert.equal((await ctx.fetch('GET', '/ready')).status, 503);
  assert.equal((await ctx.fetch('GET', '/health')).status, 200);
  await sleep(2_500);
  assert.equal(await sent(id), before, 'nothing recorded while the database is cut');
  setDown(false);
  const back = Date.now();
  await waitFor('work resumed', async () => (await sent(id)) > before, 10_000, 10);
  assert.ok(Date.now() - back <= 5_000, `resumed ${Date.now() - back} ms after the database returned`);
  await waitFor('transmitted', async () => (await showSending(c, 'generic', id)).status === 'transmitted', 60_000, 50);
  const bulk = await waitFor('import finished', async () => {
    const r = await c.request('GET', `/v3/${c.club.slug}/members/imports/during-outage/bulks/${imp.body.id}`);
    return r.body.status === 'finished' ? r.body : null;
  }, 30_000, 100);
  assert.equal(bulk.members_created_number, 1_000, JSON.stringify(bulk));
  const lines = logs.filter((l) => l.level >= 40 && l.at >= down && l.at <= back + 5_000);
  assert.ok(lines.length <= 5, `${lines.length} warn+ lines in one outage: ${JSON.stringify(lines.map((l) => l.msg))}`);
  assert.ok(logs.some((l) => l.at >= back && /database reachable again after/.test(l.msg)));
  // An answer lost with the connection (the fault hits after the statement) counts like one kill.
  await assertDelivered(ctx.db, ctx.dataDir, id, members, { kills: 1, window: WINDOW });
});

/** A sending of `members` SMS; the peer misbehaves from the first group until `heal()`; checks the rest. */
async function transportOutage(opts: {
  channel: 'sms' | 'email';
  state: 'down' | 'throttled';
  members: number;
  start: () => Promise<{ resolver: ReturnType<typeof only>; transportName: string; distinct: () => number; total: () => number }>;
  breakPeer: () => Promise<void>;
  heal: () => Promise<void>;
}) {
  const c = await ctx.club();
  if (opts.channel === 'sms') await insertSmsMembers(ctx.db, c.club.id, opts.members);
  else await insertMembers(ctx.db, c.club.id, Array.from({ length: opts.members }, (_, i) => ({ email: `m${i}@example.com`, city: 'Oslo', consents: ['email_marketing'] })));
  const peer = await opts.start();
  engine.useResolver(peer.resolver);
  await opts.breakPeer();
  const t0 = Date.now();
  const { sendingId } = await createMessage(c, 'generic', {
    channels: [opts.channel === 'sms' ? SMS_CHANNEL() : EMAIL_CHANNEL()],
    sending: { schedule: { type: 'immediate' }, audience: everyone },
  });
  const id = sendingId!;
  const shown = await waitFor('the outage shown on the sending', async () => {
    const s = await showSending(c, 'generic', id);
    return s.transport_state === opts.state ? s : null;
  }, 30_000, 50);
  assert.equal(shown.status, 'transmitting');
  assert.equal(shown.status_reason, opts.state === 'down' ? 'transport_down' : 'transport_throttled');
  const metrics = (await ctx.fetch('GET', '/metrics')).text;
  assert.match(metrics, new RegExp(`hei_transport_state\\{transport="${peer.transportName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}",state="${opts.state}"\\} 1`));
  await sleep(3_000); // several backoff rounds
  const { rows: early } = await ctx.db.query<{ n: number; a: number }>(
    `SELECT count(*) FILTER (WHERE status = 'failed')::int AS n, max(attempts)::int AS a FROM dispatches WHERE sending_id = $1`,
    [id],
  );
  assert.equal(early[0].n, 0, 'no dispatch fails for an outage');
  assert.ok(early[0].a <= 1, `an outage uses up no attempt (max attempts ${early[0].a})`);
  await opts.heal();
  const healed = Date.now();
  await waitFor('messages go through again', async () => peer.total() > 0 && (await sent(id)) > 0, 10_000, 20);
  assert.ok(Date.now() - healed <= 5_000, `recovered ${Date.now() - healed} ms after the peer returned`);
  await waitFor('transmitted', async () => (await showSending(c, 'generic', id)).status === 'transmitted', 60_000, 50);
  const done = await showSending(c, 'generic', id);
  assert.deepEqual([done.transport_state, done.status_reason, done.stats.sent, done.stats.failed], [null, null, opts.members, 0]);
  assert.equal(peer.distinct(), opts.members, 'every member at the peer');
  assert.match((await ctx.fetch('GET', '/metrics')).text, new RegExp(`hei_transport_state\\{transport="[^"]*",state="up"\\} 1`));
  const stateLines = logs.filter((l) => l.at >= t0 && /^transport .* is /.test(l.msg));
  assert.deepEqual(stateLines.map((l) => l.msg.replace(/ after .*/, '').replace(/: backing off/, '')), [`transport ${peer.transportName} is ${opts.state}`, `transport ${peer.transportName} is up again`], 'one line per state change');
  assert.ok(warnSince(t0).length <= 5);
}

test('SMSC throttling (ESME_RTHROTTLED): backoff, no attempt used, shown on the sending and in /metrics, one line per change', { timeout: 120_000 }, async () => {
  let throttling = false;
  const peer = await startSmppPeer({ status: () => (throttling ? 0x58 : 0) });
  const t = new SmppTransport({ host: '127.0.0.1', port: peer.port, systemId: 'hei', password: 'secret', connectTimeoutMs: 200, reconnectMinMs: 50, reconnectMaxMs: 200 });
  try {
    await transportOutage({
      channel: 'sms', state: 'throttled', members: 600,
      start: async () => ({ resolver: only(t), transportName: t.name, distinct: () => new Set(peer.submitted.filter((s) => true).map((s) => s.destination)).size, total: () => peer.count }),
      breakPeer: async () => void (throttling = true),
      heal: async () => void (throttling = false),
    });
  } finally {
    await t.close();
    await peer.close();
  }
});

test('SMSC dropping the bind and the port: backoff while down, resumed when it listens again', { timeout: 120_000 }, async () => {
  const peer = await startSmppPeer({});
  const t = new SmppTransport({ host: '127.0.0.1', port: peer.port, systemId: 'hei', password: 'secret', connectTimeoutMs: 200, reconnectMinMs: 50, reconnectMaxMs: 200 });
  try {
    await transportOutage({
      channel: 'sms', state: 'down', members: 600,
      start: async () => ({ resolver: only(t), transportName: t.name, distinct: () => new Set(peer.submitted.map((s) => s.destination)).size, total: () => peer.count }),
      breakPeer: () => peer.down(),
      heal: () => peer.up(),
    });
  } finally {
    await t.close();
    await peer.close();
  }
});

test('SMTP server answering 421: backoff, no attempt used, resumed when it accepts again', { timeout: 120_000 }, async () => {
  const peer = await startSmtpPeer();
  const t = new SmtpTransport({ host: '127.0.0.1', port: peer.port, user: 'mailer', password: 'pw', pool: 3 });
  let refusing = false;
  peer.rcpt = () => (refusing ? { code: 421, message: 'Service not available, try later' } : undefined);
  try {
    await transportOutage({
      channel: 'email', state: 'down', members: 150,
      start: async () => ({ resolver: only(t), transportName: t.name, distinct: () => new Set(peer.mails.map((m) => (m.to as any)?.text)).size, total: () => peer.mails.length }),
      breakPeer: async () => void (refusing = true),
      heal: async () => void (refusing = false),
    });
  } finally {
    await t.close();
    await peer.close();
  }
});

test('SMTP server vanishing: backoff while nothing listens, resumed when it is back on its port', { timeout: 120_000 }, async () => {
  let peer = await startSmtpPeer();
  const port = peer.port;
  const t = new SmtpTransport({ host: '127.0.0.1', port, user: 'mailer', password: 'pw', pool: 3, timeoutMs: 1000 });
  const mails: any[] = [];
  try {
    await transportOutage({
      channel: 'email', state: 'down', members: 150,
      start: async () => ({ resolver: only(t), transportName: t.name, distinct: () => new Set([...mails, ...peer.mails].map((m) => m.to?.text)).size, total: () => peer.mails.length }),
      breakPeer: async () => {
        mails.push(...peer.mails);
        await peer.close();
      },
      heal: async () => {
        peer = await startSmtpPeer(port);
      },
    });
  } finally {
    await t.close();
    await peer.close();
  }
});

test('disk full under the outbox (tmpfs): no partial line, the sending waits with disk_full and resumes when space returns', { timeout: 120_000 }, async (t) => {
  const mount = ctx.dataDir;
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mount], { stdio: 'pipe' });
  } catch (err) {
    const reason = `mounting a tmpfs was refused (${String((err as Error).message).split('\n')[0]}): needs root`;
    process.stderr.write(`  skipped: ${reason}\n`);
    t.skip(reason);
    return;
  }
  engine.useResolver({ resolveTransport: async () => { throw new Error('unused'); }, close: async () => {} });
  // The default resolver: the outbox in the data folder (now on the tmpfs).
  const { OutboxTransport } = await import('../src/transports/outbox.ts');
  const outbox = new OutboxTransport(outboxPath(mount), { fsync: true });
  engine.useResolver(only(outbox));
  const ballast = join(mount, 'ballast');
  try {
    const c = await ctx.club();
    const members = 3_000;
    await insertSmsMembers(ctx.db, c.club.id, members);
    const { sendingId } = await createMessage(c, 'generic', { channels: [SMS_CHANNEL()], sending: { schedule: { type: 'immediate' }, audience: everyone } });
    const id = sendingId!;
    await waitFor('transmission under way', async () => (await sent(id)) >= 300, 60_000, 2);
    // Fill the rest of the disk but a few kilobytes: the next group's append is cut short.
    const fs = statfsSync(mount);
    writeFileSync(ballast, Buffer.alloc(Math.max(0, fs.bavail * fs.bsize - 6_000)));
    const full = await waitFor('disk_full on the sending', async () => {
      const s = await showSending(c, 'generic', id);
      return s.transport_state === 'disk_full' ? s : null;
    }, 30_000, 20);
    assert.deepEqual([full.status, full.status_reason, full.stats.failed], ['transmitting', 'disk_full', 0]);
    const text = readFileSync(outboxPath(mount), 'utf8');
    assert.ok(text.endsWith('\n'), 'the outbox ends with a whole line');
    for (const line of text.split('\n').filter(Boolean)) JSON.parse(line); // no partial line
    await sleep(2_000);
    rmSync(ballast);
    const freed = Date.now();
    const at = await sent(id);
    await waitFor('writing again', async () => (await sent(id)) > at, 10_000, 20);
    assert.ok(Date.now() - freed <= 5_000, `resumed ${Date.now() - freed} ms after space returned`);
    await waitFor('transmitted', async () => (await showSending(c, 'generic', id)).status === 'transmitted', 60_000, 50);
    const done = await showSending(c, 'generic', id);
    assert.deepEqual([done.transport_state, done.status_reason], [null, null]);
    await assertDelivered(ctx.db, mount, id, members, { kills: 0, window: WINDOW });
  } finally {
    await outbox.close();
    rmSync(ballast, { force: true });
    execFileSync('umount', ['-l', mount]);
  }
});

test('clock steps (NTP forward and back) neither fire a scheduled sending twice nor skip it', { timeout: 120_000 }, async () => {
  const MIN = 60_000;
  const { ScriptedTransport } = await import('../test/delivery/helpers.ts');
  const transport = new ScriptedTransport();
  engine.useResolver(only(transport));
  const c = await ctx.club();
  await insertSmsMembers(ctx.db, c.club.id, 20);
  const T = Date.now();
  let offset = 0;
  engine.clock = () => new Date(Date.now() + offset);
  try {
    const at = (ms: number) => ({ schedule: { type: 'absolute', at: new Date(T + ms).toISOString() }, audience: everyone });
    const a = (await createMessage(c, 'generic', { channels: [SMS_CHANNEL()], sending: at(10 * MIN) })).sendingId!;
    const b = (await createMessage(c, 'generic', { channels: [SMS_CHANNEL()], sending: at(8 * MIN) })).sendingId!;
    const status = async (id: number) => (await showSending(c, 'generic', id)).status;
    // Nothing due yet (preparation starts 5 minutes ahead: both are further away).
    await engine.schedule({ waitForLock: true });
    assert.deepEqual([await status(a), await status(b)], ['scheduled', 'scheduled']);
    // A forward step of 15 minutes: both became due during the step — started, not skipped as late.
    offset = 15 * MIN;
    await engine.schedule({ waitForLock: true });
    for (const id of [a, b]) assert.ok(!['scheduled', 'failed'].includes(await status(id)), `sending ${id} started, not skipped`);
    await waitFor('both transmitted', async () => (await status(a)) === 'transmitted' && (await status(b)) === 'transmitted', 30_000, 50);
    // A backward step of 15 minutes: both are "not yet due" again — and neither fires again.
    offset = 0;
    for (let i = 0; i < 3; i++) await engine.schedule({ waitForLock: true });
    offset = 16 * MIN;
    for (let i = 0; i < 3; i++) await engine.schedule({ waitForLock: true });
    await sleep(500);
    for (const id of [a, b]) {
      const s = await showSending(c, 'generic', id);
      assert.deepEqual([s.status, s.dispatches_count, s.stats.sent], ['transmitted', 20, 20]);
    }
    const ids = transport.sentIds;
    assert.equal(ids.length, 40, 'each member got each sending exactly once');
    assert.equal(new Set(ids).size, 40);
  } finally {
    engine.clock = () => new Date();
  }
});
