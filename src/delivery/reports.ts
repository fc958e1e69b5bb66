// Delivery reports (SMPP receipts, gateway callbacks): a provider's later word on a dispatch it
// accepted, matched by provider id within the club. Only a sent dispatch moves: a report never
// revives a cancelled or skipped one.
import type { Queryable } from '../db/connection.ts';
import type { DeliveryReport } from '../transports/transport.ts';
import type { DeliveryMetrics } from './metrics.ts';

export async function recordDeliveryReports(db: Queryable, clubId: number, reports: DeliveryReport[], metrics?: DeliveryMetrics): Promise<number> {
  if (reports.length === 0) return 0;
  const { rows } = await db.query<{ channel: string; status: string }>(
    `UPDATE dispatches d
        SET status = r.status,
            delivered_at = CASE WHEN r.status = 'delivered' THEN r.at ELSE d.delivered_at END,
            failed_at = CASE WHEN r.status <> 'delivered' THEN r.at ELSE d.failed_at END,
            error = CASE WHEN r.status <> 'delivered' THEN COALESCE(r.error, d.error) ELSE d.error END,
            updated_at = now()
       FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::text[]) AS r(provider_id, status, at, error)
      WHERE d.provider_id = r.provider_id AND d.loyalty_club_id = $1 AND d.status IN ('sent', 'delivered')
      RETURNING d.channel, d.status`,
    [clubId, reports.map((r) => r.providerId), reports.map((r) => r.status), reports.map((r) => r.at), reports.map((r) => r.error ?? null)],
  );
  for (const r of rows) metrics?.dispatches.inc({ channel: r.channel, outcome: r.status });
  return rows.length;
}
