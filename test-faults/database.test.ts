// A PostgreSQL crash under `hei worker` and the one-process `hei serve` (our own cluster, stopped
// with -m immediate): nobody exits, the API answers 503 with Retry-After while the database is
// gone, the workers log the outage once and resume within 5 s of its return, every member gets the
// SMS and nothing is repeated beyond what is counted. Also: SIGTERM mid-transmission, and kill -9
// of a worker taken over at once (presence lock) instead of after its lease.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, freePort, type Cluster } from './cluster.ts';
import { assertDelivered, sentCount, sleep, spawnHei, warnLines, type HeiProcess } from './support.ts';
import type { DeliveryContext } from '../test/delivery/helpers.ts';
import { SMS_CHANNEL, createMessage, insertSmsMembers, waitFor } from '../test/delivery/helpers.ts';
import type { TestClub } from '../test/helpers.ts';
import { RECORD_GROUP } from '../src/delivery/transmit.ts';

// Set up at the top level (not in before()): the harness registers its own after() hooks.
const cluster: Cluster = await startCluster();
after(() => cluster.destroy());
process.env.DATABASE_URL = cluster.url;
const ctx: DeliveryContext = await (await import('../test/delivery/helpers.ts')).startDeliveryApp();
const everyone = { type: 'inline', conditions: [{ condition_group: 'member_properties', field: 'city', operator: 'match', value: 'Oslo' }] };
const CONCURRENCY = 2;
/** What one worker process can have handed over and not recorded: its groups in flight. */
const WINDOW = RECORD_GROUP * CONCURRENCY;


function workerEnv(clubId: number, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: cluster.url,
    HEI_DATA_DIR: ctx.dataDir,
    HEI_DELIVERY_CLUBS: String(clubId),
    HEI_DELIVERY_BATCH_SIZE: '200',
    HEI_DELIVERY_CONCURRENCY: String(CONCURRENCY),
    HEI_DELIVERY_POLL_MS: '100',
    ...extra,
  };
}

async function startPair(c: TestClub): Promise<{ worker: HeiProcess; serve: HeiProcess; port: number }> {
  const port = await freePort();
  const worker = spawnHei(['worker'], workerEnv(c.club.id));
  const serve = spawnHei(['serve', '--no-seed'], workerEnv(c.club.id, { PORT: String(port), HOST: '127.0.0.1' }));
  await waitFor('hei serve listening', async () => (await fetch(`http://127.0.0.1:${port}/health`).catch(() => null))?.ok, 60_000, 100);
  return { worker, serve, port };
}

const api = (c: TestClub, port: number, path: string) =>
  fetch(`http://127.0.0.1:${port}${path}`, {
    headers: { 'X-User-Agent': 'fault suite', 'X-Product-Name': 'test-suite', 'X-Loyalty-Club-Slug': c.club.slug, 'X-Client-Authorization': c.token },
  });

async function statusOf(sendingId: number): Promise<string> {
  const { rows } = await ctx.db.query<{ status: string }>('SELECT status FROM sendings WHERE id = $1', [sendingId]);
  return rows[0]?.status ?? 'gone';
}

async function claimedUntil(sendingId: number): Promise<number | null> {
  const { rows } = await ctx.db.query<{ t: Date | null }>('SELECT prepare_claimed_until AS t FROM sendings WHERE id = $1', [sendingId]);
  return rows[0]?.t?.getTime() ?? null;
}

/**
 * One database crash of `outageMs` while the sending is in `phase`; then everything is checked.
 */
async function crashDuring(phase: 'preparing' | 'transmitting', outageMs: number, members: number) {
  const c = await ctx.club();
  await insertSmsMembers(ctx.db, c.club.id, members);
  const { worker, serve, port } = await startPair(c);
  try {
    const { sendingId } = await createMessage(c, 'generic', { channels: [SMS_CHANNEL()], sending: { schedule: { type: 'immediate' }, audience: everyone } });
    const id = sendingId!;
    if (phase === 'preparing') await waitFor('preparation started', async () => (await statusOf(id)) === 'preparing', 30_000, 5);
    else await waitFor('transmission under way', async () => (await sentCount(ctx.db, id)) >= members / 10, 60_000, 10);
    const sentBefore = phase === 'transmitting' ? await sentCount(ctx.db, id) : 0;
    const claimBefore = await claimedUntil(id);
    cluster.crash();
    const down = Date.now();
    assert.ok(phase === 'preparing' || sentBefore < members, 'the crash hit the transmission');

    // While the database is gone: every route 503 with Retry-After, /ready 503, /health 200.
    await sleep(Math.min(3_000, outageMs / 2));
    const route = await api(c, port, `/v1/messages/generic/sendings/${id}`);
    assert.equal(route.status, 503);
    assert.deepEqual(await route.json(), { error: 'Service unavailable' });
    assert.ok(Number(route.headers.get('retry-after')) > 0, 'Retry-After');
    assert.equal((await api(c, port, '/v1/messages/generic')).status, 503);
    assert.equal((await fetch(`http://127.0.0.1:${port}/ready`)).status, 503);
    assert.equal((await fetch(`http://127.0.0.1:${port}/health`)).status, 200);

    await sleep(Math.max(0, down + outageMs - Date.now()));
    cluster.start();
    const back = Date.now();
    // Recovery within 5 s of the database's return: the work moves again (or is already done).
    await waitFor(
      'work resumed',
      // Preparation: claimed again (or done); transmission: more dispatches sent.
      async () =>
        (await statusOf(id)) === 'transmitted' ||
        (phase === 'transmitting' ? (await sentCount(ctx.db, id)) > sentBefore : (await statusOf(id)) !== 'preparing' || (await claimedUntil(id)) !== claimBefore),
      15_000,
      20,
    );
    const resumedAfterMs = Date.now() - back;
    assert.ok(resumedAfterMs <= 5_000, `resumed ${resumedAfterMs} ms after the database returned`);
    await waitFor('transmitted', async () => (await statusOf(id)) === 'transmitted', 180_000, 100);

    assert.ok(worker.alive() && serve.alive(), 'both processes survived the crash');
    assert.equal((await api(c, port, `/v1/messages/generic/sendings/${id}`)).status, 200, 'hei serve answers again');
    for (const p of [worker, serve]) {
      const lines = warnLines(p, down, back + 5_000);
      assert.ok(lines.length <= 5, `${lines.length} lines at warn or above in one outage: ${JSON.stringify(lines.map((l) => l.msg))}`);
      assert.ok(p.logs.some((l) => l.at >= back && /database reachable again after/.test(l.msg)), 'the end of the outage is logged with its duration');
    }
    // The processes were not killed: a database restart repeats nothing.
    const r = await assertDelivered(ctx.db, ctx.dataDir, id, members, { kills: 0, window: WINDOW });
    process.stderr.write(`  ${phase} crash of ${outageMs / 1000} s: resumed ${resumedAfterMs} ms after the return; ${r.repeats} repeats, ${r.possibleDuplicates} possible duplicates\n`);
  } finally {
    worker.child.kill('SIGTERM');
    serve.child.kill('SIGTERM');
    await Promise.all([worker.exited, serve.exited]);
  }
}

test('database crash of 10 s during transmission: both processes survive, 503 meanwhile, resumed within 5 s, nothing lost or repeated', { timeout: 300_000 }, async () => {
  await crashDuring('transmitting', 10_000, 20_000);
});

test('database crash of 10 s during preparation', { timeout: 300_000 }, async () => {
  await crashDuring('preparing', 10_000, 30_000);
});

test('database crash of 45 s during transmission: resumed at once, not when the leases end', { timeout: 400_000 }, async () => {
  await crashDuring('transmitting', 45_000, 20_000);
});

test('SIGTERM during transmission: the worker stops within the grace, holds nothing, and another finishes exactly once', { timeout: 300_000 }, async () => {
  const c = await ctx.club();
  const members = 20_000;
  await insertSmsMembers(ctx.db, c.club.id, members);
  const first = spawnHei(['worker'], workerEnv(c.club.id, { HEI_SHUTDOWN_GRACE_SECONDS: '5' }));
  const { sendingId } = await createMessage(c, 'generic', { channels: [SMS_CHANNEL()], sending: { schedule: { type: 'immediate' }, audience: everyone } });
  const id = sendingId!;
  await waitFor('transmission under way', async () => (await sentCount(ctx.db, id)) >= 1_000, 180_000, 10);
  const t0 = Date.now();
  first.child.kill('SIGTERM');
  await first.exited;
  const stopMs = Date.now() - t0;
  assert.equal(first.child.exitCode, 0);
  assert.ok(stopMs < 10_000, `stopped in ${stopMs} ms (grace 5 s)`);
  const { rows } = await ctx.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM dispatches WHERE sending_id = $1 AND status = 'sending'`, [id]);
  assert.equal(rows[0].n, 0, 'no dispatch left claimed by the stopped worker');
  assert.ok((await sentCount(ctx.db, id)) < members, 'it stopped mid-sending');
  const second = spawnHei(['worker'], workerEnv(c.club.id));
  try {
    await waitFor('transmitted', async () => (await statusOf(id)) === 'transmitted', 300_000, 100);
  } finally {
    second.child.kill('SIGTERM');
    await second.exited;
  }
  const r = await assertDelivered(ctx.db, ctx.dataDir, id, members, { kills: 0, window: WINDOW });
  process.stderr.write(`  SIGTERM: stopped in ${stopMs} ms; ${r.repeats} repeats\n`);
});

test('kill -9 of a worker: its claims are taken over as soon as its presence lock is gone, not after the lease', { timeout: 300_000 }, async () => {
  const c = await ctx.club();
  const members = 20_000;
  await insertSmsMembers(ctx.db, c.club.id, members);
  // A lease far longer than the test: only the presence lock can explain a quick takeover.
  const env = workerEnv(c.club.id, { HEI_DELIVERY_LEASE_SECONDS: '600' });
  const { sendingId } = await createMessage(c, 'generic', { channels: [SMS_CHANNEL()], sending: { schedule: { type: 'immediate' }, audience: everyone } });
  const id = sendingId!;
  let kills = 0;
  let w = spawnHei(['worker'], env);
  const survivor = spawnHei(['worker'], env);
  try {
    for (const target of [3_000, 8_000, 13_000]) {
      await waitFor(`progress past ${target}`, async () => (await sentCount(ctx.db, id)) >= target, 120_000, 5);
      w.child.kill('SIGKILL');
      await w.exited;
      kills++;
      w = spawnHei(['worker'], env);
    }
    await waitFor('transmitted', async () => (await statusOf(id)) === 'transmitted', 120_000, 100);
  } finally {
    for (const p of [w, survivor]) p.child.kill('SIGTERM');
    await Promise.all([w.exited, survivor.exited]);
  }
  const r = await assertDelivered(ctx.db, ctx.dataDir, id, members, { kills, window: WINDOW });
  process.stderr.write(`  kill -9 ×${kills}: ${r.repeats} repeats, ${r.possibleDuplicates} possible duplicates (bound ${kills * WINDOW})\n`);
});
