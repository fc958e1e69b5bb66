// `npm run bench -- faults`: a 200,000-dispatch SMS sending transmitted by two `hei worker`
// processes on a PostgreSQL cluster of its own, once without faults (the baseline, same run) and
// once with one worker killed (-9) every 20 s and the database crashed (-m immediate) for 10 s in
// the middle. Checks: no member missed, repeats ≤ possible_duplicates ≤ kills × transport window,
// throughput with faults ≥ half the baseline. BENCH_DISPATCHES=20000 for a quick run.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../src/app.ts';
import { openPostgres, type Database } from '../src/db/connection.ts';
import { migrate } from '../src/db/migrate.ts';
import { loadDeliverySettings } from '../src/delivery/config.ts';
import { RECORD_GROUP } from '../src/delivery/transmit.ts';
import { loadConfig } from '../src/platform/config.ts';
import { createClub } from '../src/platform/clubs.ts';
import { allPermits } from '../src/platform/permits.ts';
import { createClientToken } from '../src/platform/tokens.ts';
import { outboxPath, readOutbox } from '../src/transports/outbox.ts';
import { DEMO_MESSAGING_SETTINGS } from '../src/seed.ts';
import { startCluster, type Cluster } from '../test-faults/cluster.ts';
import { spawnHei, sleep, type HeiProcess } from '../test-faults/support.ts';
import { fmt, table } from './common.ts';

const N = Number(process.env.BENCH_DISPATCHES ?? 200_000);
const KILL_EVERY_MS = 20_000;
const OUTAGE_MS = 10_000;
const WINDOW = RECORD_GROUP * loadDeliverySettings({}).concurrency;

interface Outcome {
  seconds: number;
  perSecond: number;
  kills: number;
  missed: number;
  repeats: number;
  possibleDuplicates: number;
}

/** A query that waits out a database outage (the bench's own view of progress). */
async function patient<T>(fn: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await fn();
    } catch {
      await sleep(200);
    }
  }
}

async function run(cluster: Cluster, db: Database, faults: boolean): Promise<Outcome> {
  const app = await buildApp({ db, config: loadConfig({}), logger: false });
  const slug = `bench-faults-${faults ? 'on' : 'off'}-${Date.now()}`;
  const club = await createClub(db, { slug, name: slug, languages: ['en'], messagingSettings: DEMO_MESSAGING_SETTINGS });
  const { token } = await createClientToken(db, { clubId: club.id, product: 'bench', permits: allPermits(app) });
  await db.query(
    `INSERT INTO members (loyalty_club_id, properties, consents)
     SELECT $1, jsonb_build_object('first_name', 'm' || i, 'msisdn', (4790000000 + i)::text), '{"sms_marketing": {"status": true}}'::jsonb
       FROM generate_series(1, $2::int) AS i`,
    [club.id, N],
  );
  const dataDir = mkdtempSync(join(tmpdir(), 'hei-bench-faults-'));
  const env = { DATABASE_URL: cluster.url, HEI_DATA_DIR: dataDir, HEI_DELIVERY_CLUBS: String(club.id), LOG_LEVEL: 'error' };
  const workers: HeiProcess[] = [spawnHei(['worker'], env), spawnHei(['worker'], env)];
  const res = await app.inject({
    method: 'POST',
    url: '/v1/messages/generic',
    headers: { 'X-User-Agent': 'bench', 'X-Product-Name': 'bench', 'X-Loyalty-Club-Slug': slug, 'X-Client-Authorization': token },
    payload: {
      message: {
        name: 'Faults bench',
        channels: [{ type: 'sms', sender: { type: 'alphanumeric', value: 'Bench' }, template: { type: 'inline', definition: { type: 'plain', content: { body: 'Hei {{first_name}}' } } } }],
        sending: { schedule: { type: 'immediate' }, audience: { type: 'inline', conditions: [{ condition_group: 'member_properties', field: 'first_name', operator: 'exists' }] } },
      },
    },
  });
  await app.close();
  if (res.statusCode !== 201) throw new Error(`creating the sending: ${res.statusCode} ${res.body}`);
  const sendingId: number = res.json().message.latest_sending.id;
  const started = Date.now();
  let kills = 0;
  let crashed = !faults;
  let nextKill = started + KILL_EVERY_MS;
  const status = () => patient(async () => (await db.query<{ status: string }>('SELECT status FROM sendings WHERE id = $1', [sendingId])).rows[0].status);
  const sent = () => patient(async () => (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM dispatches WHERE sending_id = $1 AND status = 'sent'`, [sendingId])).rows[0].n);
  try {
    while ((await status()) !== 'transmitted') {
      if (faults && Date.now() >= nextKill) {
        const victim = kills % 2;
        workers[victim].child.kill('SIGKILL');
        await workers[victim].exited;
        workers[victim] = spawnHei(['worker'], env);
        kills++;
        nextKill = Date.now() + KILL_EVERY_MS;
      }
      if (!crashed && (await sent()) >= N / 2) {
        crashed = true;
        cluster.crash();
        await sleep(OUTAGE_MS);
        cluster.start();
      }
      await sleep(100);
    }
  } finally {
    for (const w of workers) w.child.kill('SIGTERM');
    await Promise.all(workers.map((w) => w.exited));
  }
  const seconds = (Date.now() - started) / 1000;
  const lines = (await readOutbox(outboxPath(dataDir))).filter((l) => l.sending_id === sendingId);
  const { rows } = await db.query<{ id: number }>('SELECT id FROM dispatches WHERE sending_id = $1', [sendingId]);
  const seen = new Set(lines.map((l) => l.dispatch_id));
  const missed = rows.filter((r) => !seen.has(r.id)).length;
  const { rows: s } = await db.query<{ possible_duplicates: number }>('SELECT possible_duplicates FROM sendings WHERE id = $1', [sendingId]);
  return { seconds, perSecond: N / seconds, kills, missed, repeats: lines.length - seen.size, possibleDuplicates: s[0].possible_duplicates };
}

export async function main(): Promise<void> {
  process.stdout.write(`faults: ${fmt(N)} SMS dispatches, two hei worker processes, own PostgreSQL cluster (starting…)\n`);
  const cluster = await startCluster();
  const db = openPostgres(cluster.url, 4);
  try {
    await migrate(db);
    const base = await run(cluster, db, false);
    const faulty = await run(cluster, db, true);
    table(
      [
        ['no faults (baseline)', base],
        [`kill -9 every ${KILL_EVERY_MS / 1000} s + database down ${OUTAGE_MS / 1000} s`, faulty],
      ].map(([name, o]) => {
        const r = o as Outcome;
        return { run: name as string, seconds: fmt(r.seconds, 1), 'dispatches/s': fmt(r.perSecond), kills: r.kills, missed: r.missed, repeats: r.repeats, possible_duplicates: r.possibleDuplicates };
      }),
    );
    const ratio = faulty.perSecond / base.perSecond;
    const checks = [
      ['no member missed', base.missed === 0 && faulty.missed === 0],
      ['repeats ≤ possible_duplicates', faulty.repeats <= faulty.possibleDuplicates && base.repeats <= base.possibleDuplicates],
      [`possible_duplicates ≤ kills × window (${faulty.kills} × ${WINDOW})`, faulty.possibleDuplicates <= faulty.kills * WINDOW],
      [`throughput with faults ≥ half the baseline (ratio ${fmt(ratio, 2)})`, ratio >= 0.5],
    ] as const;
    for (const [what, ok] of checks) process.stdout.write(`${ok ? 'PASS' : 'FAIL'}  ${what}\n`);
    if (checks.some(([, ok]) => !ok)) process.exitCode = 1;
  } finally {
    await db.close().catch(() => {});
    cluster.destroy();
  }
}
