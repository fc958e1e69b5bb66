// Preparation: the audience (stored or inline) and the inline recipients resolved once, in SQL,
// into one dispatch per receiver with its chosen channel; receivers no channel can reach become
// `skipped` dispatches with a reason, so "who did not get it, and why" is one query.
import type { Database, Queryable } from '../db/connection.ts';
import { resolveAudience, type AudienceRef } from '../members/audiences.ts';
import type { Channel } from '../transports/transport.ts';
import type { Clock, DeliverySettings } from './config.ts';

const CHANNELS: readonly Channel[] = ['sms', 'email', 'push'];

export interface PrepareOutcome {
  sendingId: number;
  status: 'prepared' | 'skipped' | 'cancelled' | 'failed' | 'gone';
  membersCount?: number;
  recipientsCount?: number;
  dispatchesCount?: number;
  skippedCount?: number;
  error?: string;
}

class Stop extends Error {
  constructor(readonly status: string) {
    super(status);
  }
}

/**
 * Claims one `preparing` sending whose preparation nobody holds: never claimed, lease ended, held
 * by a dead worker (`dead`, presence.ts), or held by this worker — the prepare job never overlaps
 * itself, so a preparation of ours that is not running was cut short (a database outage) and is
 * taken up again at once.
 */
export async function claimPreparation(
  db: Database,
  settings: Pick<DeliverySettings, 'leaseMs' | 'clubIds' | 'workerId'>,
  clock: Clock,
  dead: string[] = [],
): Promise<number | null> {
  const now = clock();
  const { rows } = await db.query<{ id: number }>(
    `UPDATE sendings SET prepare_claimed_until = $2, prepare_claimed_by = $4
      WHERE id = (SELECT id FROM sendings
                   WHERE status = 'preparing'
                     AND (prepare_claimed_until IS NULL OR prepare_claimed_until < $1 OR prepare_claimed_by = $4 OR prepare_claimed_by = ANY($5::text[]))
                     AND ($3::bigint[] IS NULL OR loyalty_club_id = ANY($3::bigint[]))
                   ORDER BY priority DESC, scheduled_at, id
                   LIMIT 1 FOR UPDATE SKIP LOCKED)
      RETURNING id`,
    [now, new Date(now.getTime() + settings.leaseMs), settings.clubIds, settings.workerId, dead],
  );
  return rows[0]?.id ?? null;
}

/**
 * The channel candidates of a sending, in order (DECISIONS "Channel choice"):
 * channels_preference ∩ the message's channels in the preference's order, else the message's order.
 */
export function channelCandidates(messageChannels: string[], preference: string[] | null): Channel[] {
  const own = messageChannels.filter((c): c is Channel => (CHANNELS as readonly string[]).includes(c));
  if (!preference || preference.length === 0) return own;
  return preference.filter((c, i): c is Channel => own.includes(c as Channel) && preference.indexOf(c) === i);
}

// SQL for "the first candidate channel this member can be reached on". Channel names reach the
// SQL only from the fixed list above; hei_member_reachable (0110_audiences.sql) is one
// expression that PostgreSQL inlines, so this stays a set-based scan.
function memberChannelSql(candidates: Channel[], m: string, marketingParam: string, consentsParam: string): string {
  if (candidates.length === 0) return 'NULL::text';
  const whens = candidates.map((c) => `WHEN hei_member_reachable(${m}, '${c}', ${marketingParam}, ${consentsParam}) THEN '${c}'`);
  return `CASE ${whens.join(' ')} END`;
}

/** Why a member got no channel: reachable without the marketing consent, or not at all. */
function memberSkipReasonSql(candidates: Channel[], m: string, consentsParam: string): string {
  if (candidates.length === 0) return `'no_usable_channel'`;
  const any = candidates.map((c) => `hei_member_reachable(${m}, '${c}', false, ${consentsParam})`).join(' OR ');
  return `CASE WHEN ${any} THEN 'no_marketing_consent' ELSE 'unreachable' END`;
}

// The newest push token of the member: one dispatch per receiver, on the device seen last.
const latestPushToken = (m: string) => `(SELECT t.token FROM member_push_tokens t WHERE t.member_id = ${m}.id ORDER BY t.id DESC LIMIT 1)`;

interface SendingRow {
  id: number;
  loyalty_club_id: number;
  status: string;
  channels_preference: string[] | null;
  audience_type: 'reference' | 'inline' | null;
  audience_id: number | null;
  audience_conditions: unknown;
  marketing: boolean;
  message_channels: string[];
}

export interface PrepareOptions {
  /** Audience chunks inserted at the same time (PostgreSQL; PGlite runs them one by one). */
  parallel?: number;
  /** Members per audience chunk (by id range). */
  chunkSize?: number;
  /** Called between chunks: renews the preparation lease. */
  heartbeat?: () => Promise<void>;
}

/**
 * Prepares one `preparing` sending. Inline recipients first, then the audience in chunks of
 * member ids, each chunk one `INSERT … SELECT … ON CONFLICT DO NOTHING`. Chunks commit on their
 * own and may run in parallel; the unique (sending, recipient) key makes the whole idempotent, so
 * a preparation interrupted by a crash is simply run again by the next worker, and one stopped
 * by a cancel leaves `pending` rows that the engine then cancels. The status changes last, under
 * the sending's row lock.
 */
export async function prepareSending(db: Database, sendingId: number, clock: Clock, opts: PrepareOptions = {}): Promise<PrepareOutcome> {
  try {
    return await prepareSteps(db, sendingId, clock, opts);
  } catch (err) {
    if (err instanceof Stop) {
      if (err.status === 'gone') return { sendingId, status: 'gone' };
      return { sendingId, status: err.status as PrepareOutcome['status'] };
    }
    // A sending that cannot be prepared (its stored audience no longer fits the member schema,
    // a referenced audience was deleted) fails with the reason; other errors are retried.
    if (err instanceof PrepareError) {
      const now = clock();
      await db.query(
        `UPDATE sendings SET status = 'failed', status_reason = 'preparation_failed', error = $2, failed_at = $3, finished_at = $3, updated_at = $3
          WHERE id = $1 AND status = 'preparing'`,
        [sendingId, err.message, now],
      );
      return { sendingId, status: 'failed', error: err.message };
    }
    throw err;
  }
}

class PrepareError extends Error {}

async function stillPreparing(db: Queryable, sendingId: number): Promise<void> {
  const { rows } = await db.query<{ status: string }>('SELECT status FROM sendings WHERE id = $1', [sendingId]);
  if (rows[0]?.status !== 'preparing') throw new Stop(rows[0]?.status ?? 'gone');
}

async function prepareSteps(db: Database, sendingId: number, clock: Clock, opts: PrepareOptions): Promise<PrepareOutcome> {
  const { rows } = await db.query<SendingRow>(
    `SELECT s.id, s.loyalty_club_id, s.status, s.channels_preference, s.audience_type, s.audience_id, s.audience_conditions,
            msg.marketing,
            ARRAY(SELECT c.type FROM message_channels c WHERE c.message_id = s.message_id ORDER BY c.position, c.id) AS message_channels
       FROM sendings s JOIN messages msg ON msg.id = s.message_id
      WHERE s.id = $1`,
    [sendingId],
  );
  const s = rows[0];
  if (!s) throw new Stop('gone');
  if (s.status !== 'preparing') throw new Stop(s.status);
  const candidates = channelCandidates(s.message_channels, s.channels_preference);
  const club = s.loyalty_club_id;

  const { rows: schemaRows } = await db.query<{ consents: Record<string, unknown> }>(
    `SELECT COALESCE(member_schema -> 'consents', '{}'::jsonb) AS consents FROM loyalty_clubs WHERE id = $1`,
    [club],
  );
  const schemaConsents = JSON.stringify(schemaRows[0]?.consents ?? {});
  // Rows from an earlier, interrupted run: the counters are then recounted at the end.
  const { rows: before } = await db.query<{ any: boolean }>('SELECT EXISTS (SELECT 1 FROM dispatches WHERE sending_id = $1) AS any', [sendingId]);
  const rerun = before[0].any;

  // The audience is resolved now and only now (DECISIONS "Audiences"); a broken one fails the
  // sending before anything is built.
  let audience: Awaited<ReturnType<typeof resolveAudience>> = null;
  if (s.audience_type) {
    const ref: AudienceRef = s.audience_type === 'reference' ? { type: 'reference', id: Number(s.audience_id) } : { type: 'inline', conditions: s.audience_conditions ?? [] };
    try {
      audience = await resolveAudience(db, club, ref, { firstParam: 5, alias: 'm' });
    } catch (err) {
      throw new PrepareError(`audience cannot be resolved: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (!audience) throw new PrepareError(`audience ${s.audience_id} does not exist`);
  }

  // 1. Inline recipients first, so that their own properties win over an audience row for the
  //    same member (the audience insert then conflicts and does nothing).
  //    A member_id receiver is a member: its address, reachability and consent come from the
  //    member row, and any address given beside member_id is ignored (DECISIONS "Recipients").
  //    Other receivers are plain addresses: the first candidate channel they have an address
  //    for is used (consent is a member notion); all their identifiers are kept on the dispatch
  //    (merge tags `email`, `msisdn`, `app_token`).
  const addressChannel = candidates.length
    ? `CASE ${candidates.map((c) => `WHEN r.${c === 'sms' ? 'msisdn' : c === 'email' ? 'email' : 'push_token'} <> '' THEN '${c}'`).join(' ')} END`
    : 'NULL::text';
  const rec = await db.query<{ recipients: number; pending: number; skipped: number }>(
    `WITH ins AS (
       INSERT INTO dispatches (loyalty_club_id, sending_id, recipient_key, status, channel, member_id, email, msisdn, push_token, properties, skip_reason)
       SELECT $1, $2, k.key,
              CASE WHEN ch.channel IS NULL THEN 'skipped' ELSE 'pending' END,
              ch.channel, m.id,
              CASE WHEN r.member_id IS NULL THEN r.email WHEN ch.channel = 'email' THEN m.email END,
              CASE WHEN r.member_id IS NULL THEN r.msisdn WHEN ch.channel = 'sms' THEN m.msisdn END,
              CASE WHEN r.member_id IS NULL THEN r.push_token WHEN ch.channel = 'push' THEN ${latestPushToken('m')} END,
              r.properties,
              CASE WHEN ch.channel IS NOT NULL THEN NULL
                   WHEN r.member_id IS NOT NULL AND m.id IS NULL THEN 'member_not_found'
                   WHEN m.id IS NOT NULL THEN ${memberSkipReasonSql(candidates, 'm', '$4::jsonb')}
                   ELSE 'no_address_for_channels' END
         FROM sending_recipients r
         LEFT JOIN members m ON m.id = r.member_id AND m.loyalty_club_id = $1
         CROSS JOIN LATERAL (SELECT CASE
              WHEN r.member_id IS NOT NULL THEN 'member:' || r.member_id
              WHEN r.email <> '' THEN 'email:' || lower(r.email)
              WHEN r.msisdn <> '' THEN 'msisdn:' || r.msisdn
              WHEN r.push_token <> '' THEN 'push:' || r.push_token
              ELSE 'recipient:' || r.id END AS key) k
         CROSS JOIN LATERAL (SELECT CASE
              WHEN r.member_id IS NOT NULL THEN CASE WHEN m.id IS NULL THEN NULL ELSE ${memberChannelSql(candidates, 'm', '$3::boolean', '$4::jsonb')} END
              ELSE ${addressChannel} END AS channel) ch
        WHERE r.sending_id = $2
        ORDER BY r.position, r.id
       ON CONFLICT (sending_id, recipient_key) DO NOTHING
       RETURNING status)
     SELECT (SELECT count(*)::int FROM sending_recipients WHERE sending_id = $2) AS recipients,
            count(*) FILTER (WHERE status = 'pending')::int AS pending,
            count(*) FILTER (WHERE status = 'skipped')::int AS skipped
       FROM ins`,
    [club, sendingId, s.marketing, schemaConsents],
  );
  let pending = rec.rows[0].pending;
  let skipped = rec.rows[0].skipped;
  const recipientsCount = rec.rows[0].recipients;

  // 2. The audience, by chunks of member ids.
  let membersCount = 0;
  if (audience) {
    const params = [club, sendingId, s.marketing, schemaConsents, ...audience.params];
    // Inline member recipients that are also audience members count as audience members too.
    // ($3 and $4 are unused here but typed, so that one parameter list serves every statement.)
    const overlap = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM dispatches d JOIN members m ON m.id = d.member_id
        WHERE d.sending_id = $2 AND m.loyalty_club_id = $1 AND $3::boolean IS NOT NULL AND $4::jsonb IS NOT NULL AND (${audience.sql})`,
      params,
    );
    membersCount += overlap.rows[0].n;
    const lo = `$${audience.nextParam}`;
    const hi = `$${audience.nextParam + 1}`;
    const chunkSql = `WITH ins AS (
         INSERT INTO dispatches (loyalty_club_id, sending_id, recipient_key, status, channel, member_id, email, msisdn, push_token, skip_reason)
         SELECT $1, $2, 'member:' || m.id,
                CASE WHEN ch.channel IS NULL THEN 'skipped' ELSE 'pending' END,
                ch.channel, m.id,
                CASE WHEN ch.channel = 'email' THEN m.email END,
                CASE WHEN ch.channel = 'sms' THEN m.msisdn END,
                CASE WHEN ch.channel = 'push' THEN ${latestPushToken('m')} END,
                CASE WHEN ch.channel IS NULL THEN ${memberSkipReasonSql(candidates, 'm', '$4::jsonb')} END
           FROM members m
           CROSS JOIN LATERAL (SELECT ${memberChannelSql(candidates, 'm', '$3::boolean', '$4::jsonb')} AS channel) ch
          WHERE m.loyalty_club_id = $1 AND m.id BETWEEN ${lo}::bigint AND ${hi}::bigint AND (${audience.sql})
         ON CONFLICT (sending_id, recipient_key) DO NOTHING
         RETURNING status)
       SELECT count(*)::int AS matched,
              count(*) FILTER (WHERE status = 'pending')::int AS pending,
              count(*) FILTER (WHERE status = 'skipped')::int AS skipped
         FROM ins`;
    const ranges = await memberRanges(db, club, opts.chunkSize ?? 100_000);
    const parallel = db.kind === 'postgres' ? Math.max(1, opts.parallel ?? 2) : 1;
    let next = 0;
    let stopped = false;
    const runChunks = async () => {
      while (next < ranges.length && !stopped) {
        const [from, to] = ranges[next++];
        try {
          await stillPreparing(db, sendingId); // a cancel stops the preparation within one chunk
        } catch (err) {
          stopped = true;
          throw err;
        }
        const r = await db.query<{ matched: number; pending: number; skipped: number }>(chunkSql, [...params, from, to]);
        membersCount += r.rows[0].matched;
        pending += r.rows[0].pending;
        skipped += r.rows[0].skipped;
        await opts.heartbeat?.();
      }
    };
    // Every loop ends before going on: no chunk may still be writing once the outcome is known.
    const loops = await Promise.allSettled(Array.from({ length: Math.min(parallel, ranges.length) }, runChunks));
    const failed = loops.find((l): l is PromiseRejectedResult => l.status === 'rejected');
    if (failed) throw failed.reason;
  }

  // 3. Under the sending's row lock: a cancel that came while we worked wins (the rows built
  //    so far are then cancelled by the engine); otherwise the counters and the new status.
  return db.transaction(async (tx) => {
    const { rows: now } = await tx.query<{ status: string }>('SELECT status FROM sendings WHERE id = $1 FOR UPDATE', [sendingId]);
    if (now[0]?.status !== 'preparing') throw new Stop(now[0]?.status ?? 'gone');
    if (rerun) {
      // Some rows came from the interrupted run: count them all instead.
      const { rows: c } = await tx.query<{ pending: number; skipped: number }>(
        `SELECT count(*) FILTER (WHERE status <> 'skipped')::int AS pending, count(*) FILTER (WHERE status = 'skipped')::int AS skipped
           FROM dispatches WHERE sending_id = $1`,
        [sendingId],
      );
      pending = c[0].pending;
      skipped = c[0].skipped;
      if (audience) {
        const { rows: m } = await tx.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM members m WHERE m.loyalty_club_id = $1 AND $2::bigint IS NOT NULL AND $3::boolean IS NOT NULL AND $4::jsonb IS NOT NULL AND (${audience.sql})`,
          [club, sendingId, s.marketing, schemaConsents, ...audience.params],
        );
        membersCount = m[0].n;
      }
    }
    const at = clock();
    const status = pending === 0 ? 'skipped' : 'prepared';
    await tx.query(
      `UPDATE sendings
          SET status = $2, recipients_count = $3, dispatches_count = $4,
              prepared_at = $5, updated_at = $5, prepare_claimed_until = NULL,
              finished_at = CASE WHEN $2 = 'skipped' THEN $5 ELSE finished_at END,
              status_reason = CASE WHEN $2 = 'skipped' THEN 'no_reachable_recipients' ELSE status_reason END
        WHERE id = $1`,
      [sendingId, status, recipientsCount, pending, at],
    );
    return { sendingId, status, membersCount, recipientsCount, dispatchesCount: pending, skippedCount: skipped } as PrepareOutcome;
  });
}

/** The club's member ids cut into ranges of about `size` members (by id span). */
async function memberRanges(db: Queryable, clubId: number, size: number): Promise<Array<[number, number]>> {
  const { rows } = await db.query<{ lo: number | null; hi: number | null; n: number }>(
    'SELECT min(id) AS lo, max(id) AS hi, count(*)::int AS n FROM members WHERE loyalty_club_id = $1',
    [clubId],
  );
  const { lo, hi, n } = rows[0];
  if (lo === null || hi === null) return [];
  const parts = Math.max(1, Math.ceil(n / size));
  const step = Math.ceil((hi - lo + 1) / parts);
  const out: Array<[number, number]> = [];
  for (let from = lo; from <= hi; from += step) out.push([from, Math.min(hi, from + step - 1)]);
  return out;
}
