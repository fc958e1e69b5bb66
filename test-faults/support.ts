// Shared by the fault suite: `hei` child processes with their log lines, and the delivery checks
// every fault case makes (at least one message per member at the peer, repeats counted).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Queryable } from '../src/db/connection.ts';
import { outboxPath, readOutbox } from '../src/transports/outbox.ts';

const HEI = fileURLToPath(new URL('../bin/hei.js', import.meta.url));

export interface LogLine {
  at: number;
  level: number;
  msg: string;
}

export interface HeiProcess {
  child: ChildProcess;
  logs: LogLine[];
  /** Ends when the process has exited. */
  exited: Promise<void>;
  alive(): boolean;
}

/** `hei serve` or `hei worker` with JSON logs collected (warn = 40, error = 50). */
export function spawnHei(args: string[], env: Record<string, string>): HeiProcess {
  const child = spawn(process.execPath, [HEI, ...args], {
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  let rest = '';
  const take = (chunk: Buffer) => {
    rest += chunk.toString();
    const lines = rest.split('\n');
    rest = lines.pop() ?? '';
    for (const l of lines) {
      if (!l.startsWith('{')) continue;
      try {
        const j = JSON.parse(l);
        logs.push({ at: Date.now(), level: j.level, msg: j.msg });
      } catch {
        // not a log line
      }
    }
  };
  child.stdout!.on('data', take);
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
    if (stderr.length > 20_000) stderr = stderr.slice(-20_000);
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.once('exit', (code, signal) => {
    if (code && code !== 0) process.stderr.write(`  hei ${args[0]} exited ${code}: ${stderr.slice(-2000)}\n`);
    else if (signal && signal !== 'SIGKILL' && signal !== 'SIGTERM') process.stderr.write(`  hei ${args[0]} ended by ${signal}\n`);
  });
  return { child, logs, exited, alive: () => child.exitCode === null && child.signalCode === null };
}

/** Log lines at warn or above in [from, to]. */
export const warnLines = (p: HeiProcess, from: number, to: number) => p.logs.filter((l) => l.level >= 40 && l.at >= from && l.at <= to);

export async function sentCount(db: Queryable, sendingId: number): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM dispatches WHERE sending_id = $1 AND status = 'sent'`, [sendingId]);
  return rows[0].n;
}

/**
 * The delivery properties of every fault case: one dispatch per member, all sent; the peer (the
 * outbox) got every one at least once; the repeats are within `possible_duplicates`, itself within
 * kills × the transport window; the sending's counters equal the peer's count.
 */
export async function assertDelivered(
  db: Queryable,
  dataDir: string,
  sendingId: number,
  members: number,
  bound: { kills: number; window: number },
): Promise<{ repeats: number; possibleDuplicates: number }> {
  const { rows: ds } = await db.query<{ id: number; status: string; member_id: number }>(
    'SELECT id, status, member_id FROM dispatches WHERE sending_id = $1',
    [sendingId],
  );
  assert.equal(ds.length, members, 'one dispatch per member');
  assert.equal(new Set(ds.map((d) => d.member_id)).size, members);
  const notSent = ds.filter((d) => d.status !== 'sent');
  assert.equal(notSent.length, 0, `every dispatch sent (${notSent.length} are not: ${[...new Set(notSent.map((d) => d.status))]})`);
  const lines = (await readOutbox(outboxPath(dataDir))).filter((l) => l.sending_id === sendingId);
  const times = new Map<number, number>();
  for (const l of lines) times.set(l.dispatch_id, (times.get(l.dispatch_id) ?? 0) + 1);
  assert.equal(ds.filter((d) => !times.has(d.id)).length, 0, 'every member got the message at the peer');
  assert.equal(times.size, members, 'no message at the peer for anything but these dispatches');
  const repeats = lines.length - times.size;
  const { rows } = await db.query<{ possible_duplicates: number; sent: number }>(
    `SELECT possible_duplicates, (SELECT count(*)::int FROM dispatches WHERE sending_id = $1 AND status = 'sent') AS sent FROM sendings WHERE id = $1`,
    [sendingId],
  );
  const possibleDuplicates = rows[0].possible_duplicates;
  assert.ok(repeats <= possibleDuplicates, `${repeats} repeats at the peer, only ${possibleDuplicates} counted`);
  assert.ok(possibleDuplicates <= bound.kills * bound.window, `${possibleDuplicates} possible duplicates > ${bound.kills} kills × window ${bound.window}`);
  assert.equal(rows[0].sent, times.size, 'the sent counter equals the peer’s count of distinct messages');
  return { repeats, possibleDuplicates };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
