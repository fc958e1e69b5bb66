// Worker liveness (DECISIONS "Faults"): each worker process registers in `delivery_workers` and
// holds a session advisory lock on (WORKER_LOCK_CLASS, its id) on a connection of its own. The
// lock ends with the process (or its connection), so "nobody holds it" means the worker is dead
// and its claims are taken over at once instead of when their leases run out. After a database
// restart a live worker takes its lock again on its next run.
import type { Database, Queryable, SessionLock } from '../db/connection.ts';

export const WORKER_LOCK_CLASS = 481_516; // the first key of every worker's lock: "hei workers"

export class WorkerPresence {
  private lock: SessionLock | null = null;

  constructor(
    private readonly db: Database,
    readonly name: string,
  ) {}

  /** Registers and takes the lock unless it is held (cheap when it is). */
  async ensure(): Promise<void> {
    if (this.lock?.held) return;
    await this.lock?.release();
    this.lock = null;
    const { rows } = await this.db.query<{ id: number }>(
      `INSERT INTO delivery_workers (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id`,
      [this.name],
    );
    this.lock = await this.db.sessionLock(WORKER_LOCK_CLASS, rows[0].id);
  }

  async release(): Promise<void> {
    const lock = this.lock;
    this.lock = null;
    await lock?.release();
  }
}

/** Names of registered workers whose lock nobody holds: dead processes. */
export async function deadWorkers(q: Queryable): Promise<string[]> {
  const { rows } = await q.query<{ name: string }>(
    `SELECT w.name FROM delivery_workers w
      WHERE NOT EXISTS (
        SELECT 1 FROM pg_locks l
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND l.classid::text::bigint = $1 AND l.objid::text::bigint = w.id)`,
    [WORKER_LOCK_CLASS],
  );
  return rows.map((r) => r.name);
}
