// One connection module: everything above it sees `Database`, never PGlite or pg.
//
// Faults (DECISIONS "Faults"): no database error ends the process. Every pg client — pooled,
// checked out for a transaction, or held for a session lock — has an `error` listener; a
// connection lost mid-query fails that query with `DatabaseUnavailable`, a typed value the
// callers map to 503 (routes) or to a quiet backoff (the worker), and the unit of work is retried.
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { mkdirSync } from 'node:fs';

export interface QueryResult<T> {
  rows: T[];
  rowCount: number;
}

export interface Queryable {
  query<T = Record<string, any>>(sql: string, params?: unknown[]): Promise<QueryResult<T>>;
}

/** A session-level advisory lock held on a connection of its own (PostgreSQL) or the one (PGlite). */
export interface SessionLock {
  /** False once the connection holding it is gone (the lock went with it). */
  readonly held: boolean;
  release(): Promise<void>;
}

export interface Database extends Queryable {
  readonly kind: 'pglite' | 'postgres';
  /** Runs `fn` in one transaction on one connection; rolls back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Runs several statements separated by `;` (migrations). */
  exec(sql: string): Promise<void>;
  /** Tries `pg_advisory_lock(classId, objId)`; the lock says whether it got it and keeps it until released. */
  sessionLock(classId: number, objId: number): Promise<SessionLock>;
  close(): Promise<void>;
}

/** The database cannot be reached (down, restarting, connection lost): retry later. */
export class DatabaseUnavailable extends Error {
  constructor(override readonly cause: unknown) {
    super(`database unavailable: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'DatabaseUnavailable';
  }
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'EAI_AGAIN', 'ENETUNREACH', 'ENOENT']);
// SQLSTATE: admin_shutdown, crash_shutdown, cannot_connect_now (starting up / shutting down).
const SERVER_GONE_STATES = new Set(['57P01', '57P02', '57P03']);

/** Whether an error means "the database is not reachable" rather than "this statement failed". */
export function isConnectionError(err: unknown): boolean {
  if (err instanceof DatabaseUnavailable) return true;
  if (!err || typeof err !== 'object') return false;
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  if (CONNECTION_CODES.has(code) || SERVER_GONE_STATES.has(code) || code.startsWith('08')) return true;
  const msg = typeof e.message === 'string' ? e.message : '';
  return /Connection terminated|connection error|timeout exceeded when trying to connect|Client was closed|terminating connection|the database system is (starting up|shutting down|in recovery)/i.test(msg);
}

function mapped(err: unknown): unknown {
  return isConnectionError(err) && !(err instanceof DatabaseUnavailable) ? new DatabaseUnavailable(err) : err;
}

// int8 ids and counts fit in a JS number for any realistic club; one representation for both drivers.
pg.types.setTypeParser(20, (v: string) => Number(v));

const ignore = () => {};

export function openPostgres(url: string, max = 10): Database {
  // A connection attempt that hangs (server restarting) fails after 5 s instead of forever.
  const pool = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis: 5_000, keepAlive: true });
  pool.on('error', ignore); // an idle client dropping is reported by the next query instead
  // A checked-out client also emits `error` when its connection drops; the query in flight rejects.
  pool.on('connect', (client) => client.on('error', ignore));
  return {
    kind: 'postgres',
    async query<T>(sql: string, params: unknown[] = []) {
      try {
        const r = await pool.query(sql, params as any[]);
        return { rows: r.rows as T[], rowCount: r.rowCount ?? 0 };
      } catch (err) {
        throw mapped(err);
      }
    },
    async transaction<T>(fn: (tx: Queryable) => Promise<T>) {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        throw mapped(err);
      }
      let broken: unknown = null;
      try {
        await client.query('BEGIN');
        const tx: Queryable = {
          async query<R>(sql: string, params: unknown[] = []) {
            try {
              const r = await client.query(sql, params as any[]);
              return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
            } catch (err) {
              if (isConnectionError(err)) broken = err;
              throw mapped(err);
            }
          },
        };
        const out = await fn(tx);
        await client.query('COMMIT');
        return out;
      } catch (err) {
        if (isConnectionError(err)) broken = err;
        if (!broken) await client.query('ROLLBACK').catch(ignore);
        throw mapped(err);
      } finally {
        // A client whose connection broke is destroyed, never handed out again.
        client.release(broken ? (broken instanceof Error ? broken : new Error(String(broken))) : undefined);
      }
    },
    async exec(sql: string) {
      try {
        await pool.query(sql);
      } catch (err) {
        throw mapped(err);
      }
    },
    async sessionLock(classId: number, objId: number) {
      // Outside the pool: the lock lives exactly as long as this connection.
      const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000, keepAlive: true });
      let held = false;
      client.on('error', () => (held = false));
      client.on('end', () => (held = false));
      try {
        await client.connect();
        // Never waits: a lock still held by a connection the server has not yet noticed gone is
        // simply not held now (the caller tries again later).
        const { rows } = await client.query('SELECT pg_try_advisory_lock($1, $2) AS ok', [classId, objId]);
        held = rows[0].ok === true;
      } catch (err) {
        await client.end().catch(ignore);
        throw mapped(err);
      }
      if (!held) await client.end().catch(ignore);
      return {
        get held() {
          return held;
        },
        async release() {
          held = false;
          await client.end().catch(ignore);
        },
      };
    },
    async close() {
      await pool.end();
    },
  };
}

/** Embedded PostgreSQL. `dataDir` undefined = in memory (tests). */
export async function openPglite(dataDir?: string): Promise<Database> {
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  const lite = await PGlite.create(dataDir);
  const wrap = (q: { query: PGlite['query'] }): Queryable => ({
    async query<T>(sql: string, params: unknown[] = []) {
      const r = await q.query<T>(sql, params as any[]);
      return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length };
    },
  });
  const base = wrap(lite);
  return {
    kind: 'pglite',
    query: base.query,
    transaction: (fn) => lite.transaction((tx) => fn(wrap(tx as any))),
    async exec(sql: string) {
      await lite.exec(sql);
    },
    async sessionLock(classId: number, objId: number) {
      // One process, one session: the lock is held until released or the process ends.
      await lite.query('SELECT pg_advisory_lock($1, $2)', [classId, objId]);
      let held = true;
      return {
        get held() {
          return held && !lite.closed;
        },
        async release() {
          if (!held || lite.closed) return;
          held = false;
          await lite.query('SELECT pg_advisory_unlock($1, $2)', [classId, objId]).catch(ignore);
        },
      };
    },
    async close() {
      await lite.close();
    },
  };
}

/**
 * A database whose every call fails with `DatabaseUnavailable` while `down` is set: how the
 * fault tests cut the embedded store (one process, no server to stop) at the database interface.
 */
export function withFaults(db: Database): { db: Database; setDown(down: boolean): void } {
  let down = false;
  const gate = () => {
    if (down) throw new DatabaseUnavailable(new Error('Connection terminated (injected fault)'));
  };
  const gated = (q: Queryable): Queryable => ({
    async query<T>(sql: string, params?: unknown[]) {
      gate();
      const r = await q.query<T>(sql, params);
      gate(); // the connection dropped before the answer came back
      return r;
    },
  });
  return {
    setDown: (d) => (down = d),
    db: {
      kind: db.kind,
      query: gated(db).query,
      transaction: (fn) => {
        gate();
        return db.transaction((tx) => fn(gated(tx)));
      },
      exec: async (sql) => {
        gate();
        await db.exec(sql);
      },
      sessionLock: async (a, b) => {
        gate();
        return db.sessionLock(a, b);
      },
      close: () => db.close(),
    },
  };
}

export async function openDatabase(opts: { databaseUrl?: string; dataDir?: string }): Promise<Database> {
  if (opts.databaseUrl) return openPostgres(opts.databaseUrl);
  return openPglite(opts.dataDir);
}
