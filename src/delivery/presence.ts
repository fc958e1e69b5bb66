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

  private taking: Promise<void> | null = null;

  /** Registers and takes the lock unless it is held (cheap when it is). One attempt at a time. */
  async ensure(): Promise<void> {
    if (this.lock?.held) return;
    this.taking ??= this.take().finally(() => (this.taking = null));
    return this.taking;
  }

  private async take(): Promise<void> {
    await this.lock?.release();
    this.lock = null;
    const { rows } = await this.db.query<{ id: number }>(
      `INSERT INTO delivery_workers (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id`,
      [this.name],
    );
    // Not held (this worker's previous connection not yet noticed gone by the server): tried
    // again on the next run.
    this.lock = await this.db.sessionLock(WORKER_LOCK_CLASS, rows[0].id);
  }

  async release(): Promise<void> {
    const lock = this.lock;
    this.lock = null;
    await lock?.release();
  }
}

/**
 * After a server (re)start every lock is gone, live workers' too: for the first
 * `RESTART_GRACE_SECONDS` of the server's uptime nobody is declared dead by its lock alone, so
 * that live workers take theirs again (they retry within 2 s) instead of being taken over.
 * PGlite is one process: any other registered worker is dead, no grace.
 */
export const RESTART_GRACE_SECONDS = 10;

/** Names of registered workers whose lock nobody holds: dead processes. */
export async function deadWorkers(q: Queryable, graceSeconds = RESTART_GRACE_SECONDS): Promise<string[]> {
  const { rows } = await q.query<{ name: string }>(
    `SELECT w.name FROM delivery_workers w
      WHERE now() - pg_postmaster_start_time() >= make_interval(secs => $2)
        AND NOT EXISTS (
        SELECT 1 FROM pg_locks l
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND l.classid::text::bigint = $1 AND l.objid::text::bigint = w.id)`,
    [WORKER_LOCK_CLASS, graceSeconds],
  );
  return rows.map((r) => r.name);
}
