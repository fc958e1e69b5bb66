// Delivery reports (SMPP receipts, gateway callbacks): a provider's later word on a dispatch it
// accepted, matched by provider id within the club. Only a sent dispatch moves: a report never
// revives a cancelled or skipped one. A report that finds no dispatch yet waits (a fast SMSC can
// answer before the engine has recorded the provider id) and is applied when the dispatch shows up.
import type { Queryable } from '../db/connection.ts';
import type { DeliveryReport } from '../transports/transport.ts';
import type { DeliveryMetrics } from './metrics.ts';

/** How long a report waits for its dispatch before it is dropped. */
const WAIT_MINUTES = 60;

// The same move for a fresh report and a waiting one; `r` is the set of reports.
const APPLY = `
  UPDATE dispatches d
     SET status = r.status,
         delivered_at = CASE WHEN r.status = 'delivered' THEN r.at ELSE d.delivered_at END,
         failed_at = CASE WHEN r.status <> 'delivered' THEN r.at ELSE d.failed_at END,
         error = CASE WHEN r.status <> 'delivered' THEN COALESCE(r.error, d.error) ELSE d.error END,
         external_delivery_status = CASE WHEN r.error IS NULL THEN r.status ELSE r.status || ': ' || r.error END,
         updated_at = now()`;

export async function recordDeliveryReports(db: Queryable, clubId: number, reports: DeliveryReport[], metrics?: DeliveryMetrics): Promise<number> {
  if (reports.length === 0) return 0;
  const params = [clubId, reports.map((r) => r.providerId), reports.map((r) => r.status), reports.map((r) => r.at), reports.map((r) => r.error ?? null)];
  const { rows } = await db.query<{ channel: string; status: string; provider_id: string }>(
    `${APPLY}
       FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::text[]) AS r(provider_id, status, at, error)
      WHERE d.provider_id = r.provider_id AND d.loyalty_club_id = $1 AND d.status IN ('sent', 'delivered')
      RETURNING d.channel, d.status, d.provider_id`,
    params,
  );
  for (const r of rows) metrics?.dispatches.inc({ channel: r.channel, outcome: r.status });
  const matched = new Set(rows.map((r) => r.provider_id));
  const waiting = reports.filter((r) => !matched.has(r.providerId));
  if (waiting.length) {
    await db.query(
      `INSERT INTO delivery_reports_waiting (loyalty_club_id, provider_id, status, at, error)
       SELECT $1, * FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::text[])`,
      [clubId, waiting.map((r) => r.providerId), waiting.map((r) => r.status), waiting.map((r) => r.at), waiting.map((r) => r.error ?? null)],
    );
  }
  return rows.length;
}

/** Applies waiting reports whose dispatch is now `sent`; drops those that waited too long. */
export async function applyWaitingReports(db: Queryable, metrics?: DeliveryMetrics): Promise<number> {
  const { rows } = await db.query<{ channel: string; status: string }>(
    `WITH r AS (
       DELETE FROM delivery_reports_waiting w USING dispatches x
        WHERE x.provider_id = w.provider_id AND x.loyalty_club_id = w.loyalty_club_id AND x.status IN ('sent', 'delivered')
       RETURNING w.loyalty_club_id, w.provider_id, w.status, w.at, w.error)
     ${APPLY}
       FROM r
      WHERE d.provider_id = r.provider_id AND d.loyalty_club_id = r.loyalty_club_id AND d.status IN ('sent', 'delivered')
      RETURNING d.channel, d.status`,
  );
  for (const r of rows) metrics?.dispatches.inc({ channel: r.channel, outcome: r.status });
  await db.query(`DELETE FROM delivery_reports_waiting WHERE received_at < now() - make_interval(mins => $1)`, [WAIT_MINUTES]);
  return rows.length;
}
