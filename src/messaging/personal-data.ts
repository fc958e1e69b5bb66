// Personal data in messaging records (DECISIONS "Personal data"): a deleted member's dispatches are
// stopped and stripped, an unsubscribe stops the pending marketing dispatches of its channel, and
// the per-club retention (loyalty_clubs.message_retention_days) strips old dispatches in bounded
// batches. Stripping keeps what the counters need (status, times, `member:<id>` keys) and removes
// identifiers, properties and content, setting `cleaned_at`.
import type { Queryable } from '../db/connection.ts';

const STRIP = `email = NULL, msisdn = NULL, push_token = NULL, properties = '{}'::jsonb, content = NULL`;

/** Before a member is deleted: its pending dispatches are cancelled, all of them stripped. */
export async function stripMemberDispatches(db: Queryable, clubId: number, memberId: number, now = new Date()): Promise<void> {
  await db.query(
    `UPDATE dispatches SET status = 'cancelled', error = 'member deleted', updated_at = $3
      WHERE loyalty_club_id = $1 AND member_id = $2 AND status = 'pending'`,
    [clubId, memberId, now],
  );
  await db.query(`UPDATE dispatches SET ${STRIP}, cleaned_at = $3, updated_at = $3 WHERE loyalty_club_id = $1 AND member_id = $2 AND cleaned_at IS NULL`, [
    clubId,
    memberId,
    now,
  ]);
  await db.query(
    `UPDATE sending_recipients r SET email = NULL, msisdn = NULL, push_token = NULL, properties = '{}'::jsonb
       FROM sendings s WHERE s.id = r.sending_id AND s.loyalty_club_id = $1 AND r.member_id = $2`,
    [clubId, memberId],
  );
}

/** After an unsubscribe: the member's pending marketing dispatches on that channel are cancelled. */
export async function stopUnsubscribedDispatches(db: Queryable, clubId: number, memberId: number, channel: string): Promise<number> {
  const { rowCount } = await db.query(
    `UPDATE dispatches d SET status = 'cancelled', error = 'unsubscribed', updated_at = now()
       FROM sendings s JOIN messages m ON m.id = s.message_id
      WHERE d.sending_id = s.id AND m.marketing AND d.loyalty_club_id = $1 AND d.member_id = $2 AND d.channel = $3 AND d.status = 'pending'`,
    [clubId, memberId, channel],
  );
  return rowCount;
}

/**
 * One bounded batch of the retention job: dispatches (and inline recipients of finished sendings)
 * older than their club's `message_retention_days` are stripped. Answers how many rows it
 * stripped; a full batch means there may be more. Issue 10's message history uses the same
 * setting and this job.
 */
export async function stripExpiredDispatches(db: Queryable, now: Date, batch = 1000): Promise<number> {
  const { rowCount } = await db.query(
    `UPDATE dispatches SET ${STRIP}, cleaned_at = $1, updated_at = $1,
            recipient_key = CASE WHEN recipient_key LIKE 'member:%' THEN recipient_key ELSE 'cleaned:' || id END
      WHERE id = ANY (ARRAY(
        SELECT d.id FROM dispatches d JOIN loyalty_clubs c ON c.id = d.loyalty_club_id
         WHERE c.message_retention_days IS NOT NULL AND d.cleaned_at IS NULL AND d.status NOT IN ('pending', 'sending')
           AND d.created_at < $1::timestamptz - make_interval(days => c.message_retention_days)
         LIMIT $2 FOR UPDATE OF d SKIP LOCKED))`,
    [now, batch],
  );
  const { rowCount: recipients } = await db.query(
    `UPDATE sending_recipients SET email = NULL, msisdn = NULL, push_token = NULL, properties = '{}'::jsonb
      WHERE id = ANY (ARRAY(
        SELECT r.id FROM sending_recipients r JOIN sendings s ON s.id = r.sending_id JOIN loyalty_clubs c ON c.id = s.loyalty_club_id
         WHERE c.message_retention_days IS NOT NULL AND s.finished_at IS NOT NULL
           AND s.finished_at < $1::timestamptz - make_interval(days => c.message_retention_days)
           AND (r.email IS NOT NULL OR r.msisdn IS NOT NULL OR r.push_token IS NOT NULL OR r.properties <> '{}'::jsonb)
         LIMIT $2))`,
    [now, batch],
  );
  return rowCount + recipients;
}
