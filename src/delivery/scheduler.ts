// The scheduler: turns `scheduled` sendings due within PREPARATION_LEAD_MS into `preparing` (the
// transmitter holds them until `scheduled_at`, transmit.ts), and fails the ones whose time
// passed more than 20 minutes ago (the system was down): a late message is worse than none
// (DECISIONS "Failure"). One scheduler across all processes: each tick runs under a transaction
// advisory lock that the other processes' ticks simply skip. A paused sending waits: it is neither
// started nor failed until it is resumed. A transmitting sending paused by the engine (error burst,
// transmit.ts) and not resumed within the pause timeout becomes `failed` here, with its pending
// dispatches (DECISIONS "Failure").
import type { Database } from '../db/connection.ts';
import type { Clock, DeliverySettings } from './config.ts';

const SCHEDULER_LOCK = 4_815_162_343; // constant, next to the migrations lock: "hei scheduler"

/** Preparation starts this long before `scheduled_at` (DECISIONS "Execution", MPC: 5 minutes). */
export const PREPARATION_LEAD_MS = 5 * 60_000;

export interface SchedulerTickResult {
  /** False when another process held the scheduler lock. */
  ran: boolean;
  started: number[];
  failed: number[];
  /** Paused sendings failed because nobody resumed them in time. */
  pauseExpired: number[];
}

/** The error of a dispatch left pending by a sending whose pause expired. */
export const PAUSE_EXPIRED_ERROR = 'paused and not resumed';

export async function schedulerTick(db: Database, settings: Pick<DeliverySettings, 'lateAfterMs' | 'clubIds' | 'pauseTimeoutMs'>, clock: Clock): Promise<SchedulerTickResult> {
  const now = clock();
  const lateBefore = new Date(now.getTime() - settings.lateAfterMs);
  return db.transaction(async (tx) => {
    const { rows: lock } = await tx.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS locked', [SCHEDULER_LOCK]);
    if (!lock[0].locked) return { ran: false, started: [], failed: [], pauseExpired: [] };
    // Times come from the injected clock, never now(): tests move it, and every process
    // agrees on the rule whatever its database session's time.
    const failed = await tx.query<{ id: number }>(
      `UPDATE sendings
          SET status = 'failed', failed_at = $1, finished_at = $1, updated_at = $1, dispatches_closed_at = $1,
              status_reason = 'not_started_in_time', error = 'not started within 20 minutes of scheduled_at'
        WHERE status = 'scheduled' AND NOT paused AND scheduled_at < $2
          AND ($3::bigint[] IS NULL OR loyalty_club_id = ANY($3::bigint[]))
        RETURNING id`,
      [now, lateBefore, settings.clubIds],
    );
    const started = await tx.query<{ id: number }>(
      `UPDATE sendings
          SET status = 'preparing', preparing_started_at = $1, updated_at = $1, dispatches_count = 0
        WHERE status = 'scheduled' AND NOT paused AND scheduled_at <= $3
          AND ($2::bigint[] IS NULL OR loyalty_club_id = ANY($2::bigint[]))
        RETURNING id`,
      [now, settings.clubIds, new Date(now.getTime() + PREPARATION_LEAD_MS)],
    );
    // Paused without a paused_at (set by hand, the seeded example) never expires.
    const hours = settings.pauseTimeoutMs / 3_600_000;
    // A sending waiting for its transport (an outage, DECISIONS "Faults") gets the same time.
    const expired = await tx.query<{ id: number }>(
      `UPDATE sendings
          SET status = 'failed', paused = false, failed_at = $1, finished_at = $1, updated_at = $1,
              status_reason = CASE WHEN paused AND paused_at <= $2 THEN 'paused_too_long' ELSE 'transport_unavailable_too_long' END,
              error = CASE WHEN paused AND paused_at <= $2 THEN $4 ELSE $5 END
        WHERE status = 'transmitting' AND ((paused AND paused_at <= $2) OR transport_state_since <= $2)
          AND ($3::bigint[] IS NULL OR loyalty_club_id = ANY($3::bigint[]))
        RETURNING id`,
      [
        now,
        new Date(now.getTime() - settings.pauseTimeoutMs),
        settings.clubIds,
        `paused and not resumed within ${+hours.toFixed(2)} hours`,
        `transport unavailable for more than ${+hours.toFixed(2)} hours`,
      ],
    );
    const expiredIds = expired.rows.map((r) => r.id);
    if (expiredIds.length) {
      // Rows still leased by a worker (a batch in flight when the sending paused) are closed by the
      // transmitter like those of any failed sending (dispatches_closed_at stays null until then).
      await tx.query(
        `UPDATE dispatches SET status = 'failed', failed_at = $2, updated_at = $2, error = $3, claimed_until = NULL
          WHERE sending_id = ANY($1::bigint[]) AND status = 'pending'`,
        [expiredIds, now, PAUSE_EXPIRED_ERROR],
      );
    }
    return { ran: true, started: started.rows.map((r) => r.id), failed: failed.rows.map((r) => r.id), pauseExpired: expiredIds };
  });
}
