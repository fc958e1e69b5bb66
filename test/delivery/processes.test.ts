// Real worker processes (`node bin/hei.js worker`) against one PostgreSQL server: kill -9 in the
// middle of a sending several times, and two workers sharing a sending. PostgreSQL only: the
// embedded database serves one process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { outboxPath, readOutbox } from '../../src/transports/outbox.ts';
import { SMS_CHANNEL, createMessage, dispatchesOf, insertSmsMembers, showSending, startDeliveryApp, waitFor } from './helpers.ts';

const pg = Boolean(process.env.DATABASE_URL);
const SKIP = pg ? false : 'worker processes need a PostgreSQL server: run with DATABASE_URL=postgres://… (the embedded PGlite serves one process)';
const HEI = fileURLToPath(new URL('../../bin/hei.js', import.meta.url));
const everyone = { type: 'inline', conditions: [{ condition_group: 'member_properties', field: 'city', operator: 'match', value: 'Oslo' }] };

const ctx = pg ? await startDeliveryApp() : null;

function worker(clubId: number, dataDir: string, extra: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, [HEI, 'worker'], {
    env: {
      ...process.env,
      HEI_DATA_DIR: dataDir,
      HEI_DELIVERY_CLUBS: String(clubId),
      HEI_DELIVERY_LEASE_SECONDS: '2',
      HEI_DELIVERY_BATCH_SIZE: '25',
      HEI_DELIVERY_POLL_MS: '50',
      LOG_LEVEL: 'error',
      ...extra,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return child;
}

const exited = (child: ChildProcess) => new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));

async function counts(sendingId: number): Promise<{ sent: number; sending: number }> {
  const { rows } = await ctx!.db.query<{ sent: number; sending: number }>(
    `SELECT count(*) FILTER (WHERE status = 'sent')::int AS sent, count(*) FILTER (WHERE status = 'sending')::int AS sending FROM dispatches WHERE sending_id = $1`,
    [sendingId],
  );
  return rows[0];
}

test('kill -9 a worker mid-sending several times: every recipient gets exactly one sent dispatch, nothing missing, repeats only where counted', { skip: SKIP, timeout: 180_000 }, async () => {
  const c = await ctx!.club();
  const N = 4000;
  await insertSmsMembers(ctx!.db, c.club.id, N);
  const { sendingId } = await createMessage(c, 'generic', { channels: [SMS_CHANNEL()], sending: { schedule: { type: 'immediate' }, audience: everyone } });
  const kills: number[] = [];
  let last = 0;
  for (let round = 0; round < 4; round++) {
    const w = worker(c.club.id, ctx!.dataDir);
    // Let it make progress, then kill it without warning somewhere inside a batch (killed
    // whatever happens: a worker left running keeps the test process alive).
    const target = last + 150 + Math.floor(Math.random() * 150);
    try {
      await waitFor(`progress past ${target}`, async () => (await counts(sendingId!)).sent >= target, 60_000, 5);
    } finally {
      w.kill('SIGKILL');
      await exited(w);
    }
    const now = await counts(sendingId!);
    kills.push(now.sent);
    last = now.sent;
    assert.ok(now.sent < N, `the sending was still running at kill ${round + 1}`);
  }
  const w = worker(c.club.id, ctx!.dataDir);
  try {
    await waitFor('transmitted', async () => (await showSending(c, 'generic', sendingId!)).status === 'transmitted', 120_000, 50);
  } finally {
    w.kill('SIGTERM');
    await exited(w);
  }

  const ds = await dispatchesOf(ctx!.db, sendingId!);
  assert.equal(ds.length, N, 'one dispatch per recipient');
  assert.ok(ds.every((d) => d.status === 'sent'), 'every dispatch sent');
  assert.equal(new Set(ds.map((d) => d.member_id)).size, N);

  const lines = (await readOutbox(outboxPath(ctx!.dataDir))).filter((l) => l.sending_id === sendingId);
  const times = new Map<number, number>();
  for (const l of lines) times.set(l.dispatch_id, (times.get(l.dispatch_id) ?? 0) + 1);
  const missing = ds.filter((d) => !times.has(d.id));
  assert.equal(missing.length, 0, 'no message missing from the outbox');
  const flagged = new Set(ds.filter((d) => d.possible_duplicate).map((d) => d.id));
  const repeated = [...times].filter(([, n]) => n > 1);
  for (const [id] of repeated) assert.ok(flagged.has(id), `dispatch ${id} went out twice without being counted`);
  const s = await showSending(c, 'generic', sendingId!);
  const { rows } = await ctx!.db.query('SELECT possible_duplicates FROM sendings WHERE id = $1', [sendingId]);
  const extra = repeated.reduce((a, [, n]) => a + n - 1, 0);
  assert.ok(extra <= rows[0].possible_duplicates, `${extra} repeats within the ${rows[0].possible_duplicates} counted`);
  assert.equal(s.stats.sent, N);
  process.stderr.write(`  crash test: killed at ${kills.join(', ')} sent; ${rows[0].possible_duplicates} possibly repeated (counted), ${extra} actually repeated in the outbox\n`);
});

test('two worker processes share one sending: no recipient sent twice', { skip: SKIP, timeout: 120_000 }, async () => {
  const c = await ctx!.club();
  const N = 3000;
  await insertSmsMembers(ctx!.db, c.club.id, N);
  const { sendingId } = await createMessage(c, 'generic', { channels: [SMS_CHANNEL()], sending: { schedule: { type: 'immediate' }, audience: everyone } });
  const workers = [worker(c.club.id, ctx!.dataDir), worker(c.club.id, ctx!.dataDir)];
  try {
    await waitFor('transmitted', async () => (await showSending(c, 'generic', sendingId!)).status === 'transmitted', 100_000, 50);
  } finally {
    for (const w of workers) w.kill('SIGTERM');
    await Promise.all(workers.map(exited));
  }
  const ds = await dispatchesOf(ctx!.db, sendingId!);
  assert.equal(ds.length, N);
  assert.ok(ds.every((d) => d.status === 'sent' && d.attempts === 1 && !d.possible_duplicate));
  const byWorker = new Map<string, number>();
  for (const d of ds) byWorker.set(d.claimed_by, (byWorker.get(d.claimed_by) ?? 0) + 1);
  assert.equal(byWorker.size, 2, `both workers took part: ${JSON.stringify([...byWorker])}`);
  const lines = (await readOutbox(outboxPath(ctx!.dataDir))).filter((l) => l.sending_id === sendingId);
  assert.equal(lines.length, N, 'exactly one outbox line per recipient');
  assert.equal(new Set(lines.map((l) => l.dispatch_id)).size, N);
});
