// The scheduler: turns due `scheduled` sendings into `preparing`, and fails the ones whose time
// passed more than 20 minutes ago (the system was down): a late message is worse than none
// (DECISIONS "Failure"). One scheduler across all processes: each tick runs under a transaction
// advisory lock that the other processes' ticks simply skip.
import type { Database } from '../db/connection.ts';
import type { Clock, DeliverySettings } from './config.ts';

const SCHEDULER_LOCK = 4_815_162_343; // constant, next to the migrations lock: "hei scheduler"

export interface SchedulerTickResult {
  /** False when another process held the scheduler lock. */
  ran: boolean;
  started: number[];
  failed: number[];
}

export async function schedulerTick(db: Database, settings: Pick<DeliverySettings, 'lateAfterMs' | 'clubIds'>, clock: Clock): Promise<SchedulerTickResult> {
  const now = clock();
  const lateBefore = new Date(now.getTime() - settings.lateAfterMs);
  return db.transaction(async (tx) => {
    const { rows: lock } = await tx.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS locked', [SCHEDULER_LOCK]);
    if (!lock[0].locked) return { ran: false, started: [], failed: [] };
    // Times come from the injected clock, never now(): tests move it, and every process
    // agrees on the rule whatever its database session's time.
    const failed = await tx.query<{ id: number }>(
      `UPDATE sendings
          SET status = 'failed', failed_at = $1, finished_at = $1, updated_at = $1, dispatches_closed_at = $1,
              error = 'not started within 20 minutes of scheduled_at'
        WHERE status = 'scheduled' AND scheduled_at < $2
          AND ($3::bigint[] IS NULL OR loyalty_club_id = ANY($3::bigint[]))
        RETURNING id`,
      [now, lateBefore, settings.clubIds],
    );
    const started = await tx.query<{ id: number }>(
      `UPDATE sendings
          SET status = 'preparing', preparing_started_at = $1, updated_at = $1
        WHERE status = 'scheduled' AND scheduled_at <= $1
          AND ($2::bigint[] IS NULL OR loyalty_club_id = ANY($2::bigint[]))
        RETURNING id`,
      [now, settings.clubIds],
    );
    return { ran: true, started: started.rows.map((r) => r.id), failed: failed.rows.map((r) => r.id) };
  });
}
