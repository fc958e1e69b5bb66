// `npm run bench -- transports [sms|email|rate]`: the adapters against local peers, each next
// to the bare library doing the same work in the same run.
//   sms   — 100,000 SMS through SmppTransport (window 100) vs a bare `smpp` client loop, window 100
//   email — 20,000 e-mails through SmtpTransport (pool 5) vs a bare nodemailer pool of 5
//   rate  — RateLimitedTransport at 500/s for 20 s on PostgreSQL buckets: measured rate
// Peers run in a child process (this file with HEI_BENCH_PEER set) so they do not share our CPU.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import smpp from 'smpp';
import nodemailer from 'nodemailer';
import { SmppTransport } from '../src/transports/smpp.ts';
import { SmtpTransport } from '../src/transports/smtp.ts';
import { DbBucketStore, MemoryBucketStore, parseRate, RateLimitedTransport } from '../src/transports/ratelimit.ts';
import type { OutgoingMessage, SendResult, Transport } from '../src/transports/transport.ts';
import { setClubTransport } from '../src/transports/config.ts';
import { registerClubTransports } from '../src/transports/directory.ts';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/platform/config.ts';
import { createClub } from '../src/platform/clubs.ts';
import { allPermits } from '../src/platform/permits.ts';
import { createClientToken } from '../src/platform/tokens.ts';
import { deliveryEngineOf } from '../src/delivery/index.ts';
import { DEMO_MESSAGING_SETTINGS } from '../src/seed.ts';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchDatabase, fmt, table } from './common.ts';

const SMS_COUNT = Number(process.env.BENCH_SMS ?? 100_000);
const MAIL_COUNT = Number(process.env.BENCH_MAIL ?? 20_000);
const WINDOW = 100;
const POOL = 5;
const BATCH = 1000;
const LANES = 4;

// ---- peers (child process) ----------------------------------------------------------------------

async function runPeer(kind: string): Promise<void> {
  if (kind === 'smpp') {
    const { startSmppPeer } = await import('../test/transports/smpp-peer.ts');
    const peer = await startSmppPeer({ record: false });
    process.stdout.write(`PORT ${peer.port}\n`);
  } else {
    const { SMTPServer } = await import('smtp-server');
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      onData: (stream, _s, cb) => {
        stream.on('data', () => {});
        stream.on('end', () => cb());
      },
    });
    server.listen(0, '127.0.0.1', () => process.stdout.write(`PORT ${(server.server.address() as any).port}\n`));
  }
}

function startPeer(kind: string): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], { env: { ...process.env, HEI_BENCH_PEER: kind }, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d) => {
      buf += d;
      const m = /PORT (\d+)/.exec(buf);
      if (m) resolve({ port: Number(m[1]), child });
    });
    child.on('exit', (code) => reject(new Error(`peer exited ${code}`)));
  });
}

// ---- workloads ----------------------------------------------------------------------------------

const smsMessage = (i: number): OutgoingMessage => ({
  dispatchId: i,
  sendingId: 1,
  channel: 'sms',
  marketing: true,
  recipient: { msisdn: `47${90000000 + (i % 9_000_000)}` },
  content: { kind: 'sms', from: { type: 'alphanumeric', value: 'InfinityMal' }, text: `Hei! Helgetilbud ${i}: 50% på alt i dag.` },
});

const mailMessage = (i: number): OutgoingMessage => ({
  dispatchId: i,
  sendingId: 1,
  channel: 'email',
  marketing: true,
  recipient: { email: `member${i}@example.test` },
  content: {
    kind: 'email',
    from: { email: 'news@infinity-mall.test', name: 'Infinity Mall' },
    subject: `Weekend offers ${i}`,
    html: '<html><body><h1>Offers</h1><p>50% off everything this weekend.</p></body></html>',
    text: 'Offers\n50% off everything this weekend.',
    preheader: 'Only this weekend',
    unsubscribeUrl: `https://hei.test/u/${i}`,
  },
});

/** LANES concurrent loops each sending batches of BATCH, like the engine's transmit loops. */
async function drive(t: Transport, count: number, make: (i: number) => OutgoingMessage): Promise<{ seconds: number; sent: number }> {
  let next = 0;
  let sent = 0;
  const started = process.hrtime.bigint();
  const lane = async () => {
    while (next < count) {
      const from = next;
      next = Math.min(count, next + BATCH);
      const batch: OutgoingMessage[] = [];
      for (let i = from; i < next; i++) batch.push(make(i));
      const r: SendResult[] = await t.send(batch);
      sent += r.filter((x) => x.status === 'sent').length;
    }
  };
  await Promise.all(Array.from({ length: LANES }, lane));
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, sent };
}

async function bareSmpp(port: number, count: number): Promise<{ seconds: number; sent: number }> {
  const session = smpp.connect({ host: '127.0.0.1', port });
  session.on('error', () => {});
  await new Promise<void>((resolve) => session.on('connect', () => session.bind_transceiver({ system_id: 'hei', password: 'secret' }, () => resolve())));
  session.socket.setNoDelay(true); // as the adapter does
  let sent = 0;
  let issued = 0;
  let outstanding = 0;
  const started = process.hrtime.bigint();
  await new Promise<void>((resolve) => {
    const pump = () => {
      while (outstanding < WINDOW && issued < count) {
        const i = issued++;
        outstanding++;
        const m = smsMessage(i);
        const c = m.content as { text: string };
        session.submit_sm(
          { source_addr_ton: 5, source_addr_npi: 0, source_addr: 'InfinityMal', dest_addr_ton: 1, dest_addr_npi: 1, destination_addr: m.recipient.msisdn, registered_delivery: 1, short_message: c.text },
          (pdu: any) => {
            outstanding--;
            if (pdu.command_status === 0) sent++;
            if (sent === count) resolve();
            else pump();
          },
        );
      }
    };
    pump();
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await new Promise<void>((r) => session.unbind(() => (session.close(), r())));
  return { seconds, sent };
}

async function bareMail(port: number, count: number): Promise<{ seconds: number; sent: number }> {
  const mailer = nodemailer.createTransport({ pool: true, host: '127.0.0.1', port, secure: false, maxConnections: POOL, maxMessages: 1000 } as any);
  let next = 0;
  let sent = 0;
  const started = process.hrtime.bigint();
  const lane = async () => {
    while (next < count) {
      const from = next;
      next = Math.min(count, next + BATCH);
      const jobs: Promise<unknown>[] = [];
      for (let i = from; i < next; i++) {
        const c = mailMessage(i).content as any;
        jobs.push(mailer.sendMail({ from: { name: c.from.name, address: c.from.email }, to: `member${i}@example.test`, subject: c.subject, html: c.html, text: c.text }).then(() => sent++));
      }
      await Promise.all(jobs);
    }
  };
  await Promise.all(Array.from({ length: LANES }, lane));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  mailer.close();
  return { seconds, sent };
}

const rate = (r: { seconds: number; sent: number }) => r.sent / r.seconds;

/**
 * The whole engine: 100,000 members with SMS consent, one immediate sending through the API,
 * prepared and transmitted by the delivery engine to the club's configured SMPP transport
 * (registered with the engine's resolver as `hei serve` would), on PostgreSQL.
 */
async function engineSms(port: number): Promise<{ seconds: number; sent: number; prepareSeconds: number }> {
  process.env.HEI_SECRET_KEY ??= 'hei-bench-key';
  const { db } = await benchDatabase('hei_bench_transports');
  const config = { ...loadConfig({}), dataDir: mkdtempSync(join(tmpdir(), 'hei-bench-')), tokenCacheSeconds: 0 };
  const app = await buildApp({ db, config, logger: false });
  const unregister = registerClubTransports(db, { recheckMs: 60_000 });
  const slug = `bench-${Date.now().toString(36)}`;
  const club = await createClub(db, { slug, name: slug, messagingSettings: DEMO_MESSAGING_SETTINGS });
  const { token } = await createClientToken(db, { clubId: club.id, product: 'bench', permits: allPermits(app) });
  await db.query(`UPDATE loyalty_clubs SET member_schema = member_schema || '{"consents": {"sms_marketing": {}}}'::jsonb WHERE id = $1`, [club.id]);
  await setClubTransport(db, club.id, { channel: 'sms', url: `smpp://hei:secret@127.0.0.1:${port}?window=${WINDOW}` });
  await db.query(
    `INSERT INTO members (loyalty_club_id, properties, consents)
     SELECT $1, jsonb_build_object('first_name', 'm' || i, 'msisdn', (4790000000 + i)::text), '{"sms_marketing": {"status": true}}'::jsonb
       FROM generate_series(0, $2 - 1) AS i`,
    [club.id, SMS_COUNT],
  );
  const engine = deliveryEngineOf(app.hei);
  engine.settings.clubIds = [club.id];
  engine.settings.batchSize = BATCH;
  engine.settings.concurrency = LANES;
  const res = await app.inject({
    method: 'POST',
    url: '/v1/messages/campaigns',
    headers: { 'x-user-agent': 'bench', 'x-product-name': 'bench', 'x-loyalty-club-slug': slug, 'x-client-authorization': token, 'content-type': 'application/json' },
    payload: {
      message: {
        name: 'Bench',
        channels: [{ type: 'sms', sender: { type: 'alphanumeric', value: 'InfinityMal' }, template: { type: 'inline', definition: { type: 'plain', content: { body: 'Hei {{first_name}}! Helgetilbud: 50% på alt i dag.' } } } }],
        sending: { schedule: { type: 'immediate' }, audience: { type: 'inline', conditions: [{ condition_group: 'consents', field: 'sms_marketing', operator: 'match', value: true }] } },
      },
    },
  });
  if (res.statusCode >= 300) throw new Error(`create message: ${res.statusCode} ${res.body}`);
  const sendingId = res.json().message.latest_sending.id;
  const p0 = process.hrtime.bigint();
  await engine.schedule();
  while ((await engine.prepareOne()) !== null);
  const prepareSeconds = Number(process.hrtime.bigint() - p0) / 1e9;
  const started = process.hrtime.bigint();
  while (await engine.transmit());
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM dispatches WHERE sending_id = $1 AND status = 'sent'`, [sendingId]);
  await unregister();
  await app.close();
  await db.close();
  return { seconds, sent: rows[0].n, prepareSeconds };
}

async function benchSms(): Promise<void> {
  const { port, child } = await startPeer('smpp');
  try {
    const t = new SmppTransport({ host: '127.0.0.1', port, systemId: 'hei', password: 'secret', window: WINDOW });
    await drive(t, 2000, smsMessage); // warm-up (bind, JIT)
    const adapter = await drive(t, SMS_COUNT, smsMessage);
    await t.close();
    await bareSmpp(port, 2000);
    const bare = await bareSmpp(port, SMS_COUNT);
    const engine = process.env.BENCH_ENGINE === '0' ? null : await engineSms(port);
    process.stdout.write(`\nSMS over SMPP, ${fmt(SMS_COUNT)} messages, window ${WINDOW}, batches of ${BATCH}, ${LANES} concurrent\n`);
    table([
      ...(engine ? [{ run: 'engine → SmppTransport (transmit)', sent: fmt(engine.sent), seconds: fmt(engine.seconds, 2), 'msg/s': fmt(rate(engine)) }] : []),
      { run: 'SmppTransport alone', sent: fmt(adapter.sent), seconds: fmt(adapter.seconds, 2), 'msg/s': fmt(rate(adapter)) },
      { run: 'bare smpp loop', sent: fmt(bare.sent), seconds: fmt(bare.seconds, 2), 'msg/s': fmt(rate(bare)) },
    ]);
    if (engine) process.stdout.write(`engine preparation (audience → dispatches) before transmission: ${fmt(engine.prepareSeconds, 2)} s\n`);
    for (const [label, r] of [['engine', engine], ['adapter', adapter]] as const) {
      if (r) process.stdout.write(`${label} / bare = ${fmt(rate(r) / rate(bare), 2)} (target ≥ 0.70); ${fmt(rate(r))} msg/s (target ≥ 10,000)\n`);
    }
  } finally {
    child.kill();
  }
}

async function benchEmail(): Promise<void> {
  const { port, child } = await startPeer('smtp');
  try {
    const t = new SmtpTransport({ host: '127.0.0.1', port, pool: POOL, maxMessages: 1000 });
    await drive(t, 500, mailMessage);
    const adapter = await drive(t, MAIL_COUNT, mailMessage);
    await t.close();
    await bareMail(port, 500);
    const bare = await bareMail(port, MAIL_COUNT);
    process.stdout.write(`\nE-mail over SMTP, ${fmt(MAIL_COUNT)} messages, pool of ${POOL} connections\n`);
    table([
      { run: 'SmtpTransport', sent: fmt(adapter.sent), seconds: fmt(adapter.seconds, 2), 'msg/s': fmt(rate(adapter)) },
      { run: 'bare nodemailer pool', sent: fmt(bare.sent), seconds: fmt(bare.seconds, 2), 'msg/s': fmt(rate(bare)) },
    ]);
    process.stdout.write(`adapter / bare = ${fmt(rate(adapter) / rate(bare), 2)} (target ≥ 0.80)\n`);
  } finally {
    child.kill();
  }
}

async function benchRate(): Promise<void> {
  const seconds = Number(process.env.BENCH_RATE_SECONDS ?? 20);
  const target = 500;
  const results: Record<string, string | number>[] = [];
  for (const [label, store] of [
    ['PostgreSQL buckets', new DbBucketStore((await benchDatabase('hei_bench_transports')).db)],
    ['memory buckets', new MemoryBucketStore()],
  ] as const) {
    let sent = 0;
    let started = Date.now();
    // Counted only inside the measured window: a send still waiting when it closes does not count.
    const counter: Transport = {
      name: 'count',
      close: async () => {},
      send: async (b) => {
        if (Date.now() - started <= seconds * 1000) sent += b.length;
        return b.map((m) => ({ status: 'sent' as const, providerId: String(m.dispatchId) }));
      },
    };
    const t = new RateLimitedTransport(counter, { account: `bench:${Date.now()}:${label}`, windows: parseRate(`${target}/s`), store, maxWaitMs: 1000 });
    started = Date.now();
    let i = 0;
    // An engine-like loop: batches of 200; what comes back "rate limited" is offered again.
    while (Date.now() - started < seconds * 1000) {
      const batch = Array.from({ length: 200 }, () => smsMessage(i++));
      await t.send(batch);
    }
    const elapsed = seconds;
    const measured = sent / elapsed;
    results.push({ store: label, configured: `${target}/s`, seconds: fmt(elapsed, 2), sent: fmt(sent), 'measured/s': fmt(measured, 1), error: `${fmt(((measured - target) / target) * 100, 2)} %` });
  }
  process.stdout.write(`\nRate limit ${target}/s for ${seconds} s (target within ±5 %)\n`);
  table(results);
}

export async function main(args: string[]): Promise<void> {
  const which = args.filter((a) => ['sms', 'email', 'rate'].includes(a));
  const run = which.length ? which : ['sms', 'email', 'rate'];
  if (run.includes('sms')) await benchSms();
  if (run.includes('email')) await benchEmail();
  if (run.includes('rate')) await benchRate();
  process.exit(0); // the PostgreSQL pool and timers of the adapters need not be waited for
}

if (process.env.HEI_BENCH_PEER) await runPeer(process.env.HEI_BENCH_PEER);
