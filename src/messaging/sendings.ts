// Sendings (§6.4–§6.7, §9, §10): payload rules, schedule, audience and recipients, the status
// rules the API enforces (edit only draft/scheduled, cancel only preparing/prepared/transmitting).
// Statuses past `scheduled` are driven by the delivery engine.
import type { TransportOutage } from '../transports/transport.ts';
import type { Queryable } from '../db/connection.ts';
import type { LoyaltyClub } from '../platform/context.ts';
import { ApiError, forbidden, notAllowed, Violations } from '../platform/errors.ts';
import { limitOffset, orderBy, paginationInfo, type ListQuery, selectPage } from '../platform/pagination.ts';
import type { Database } from '../db/connection.ts';
import type { StatusReason } from './status-reason.ts';
import { checkGroupsExist, findAudience, loadMemberSchema, validateConditions, type AudienceCondition } from '../members/audiences.ts';
import { PERMIT_SET_PRIORITY } from './services.ts';
import {
  DISPATCH_STATUSES,
  type AudienceInput,
  type ChannelType,
  type DispatchStatus,
  type RecipientInput,
  type ScheduleInput,
  type SendingInput,
  type SendingStatus,
} from './schemas.ts';
import { iso } from '../platform/schema.ts';

type Path = ReadonlyArray<string | number>;

export const EDITABLE: readonly SendingStatus[] = ['draft', 'scheduled'];
export const CANCELLABLE: readonly SendingStatus[] = ['preparing', 'prepared', 'transmitting'];
export const EXECUTING: readonly SendingStatus[] = ['preparing', 'prepared', 'transmitting'];
export const FINISHED: readonly SendingStatus[] = ['transmitted', 'cancelled', 'failed', 'skipped'];

// ---------- schedule ----------

const UNIT_MS = { second: 1_000, minute: 60_000, hour: 3_600_000, day: 86_400_000, week: 604_800_000 } as const;
/** Farthest a relative schedule may point (a typo of "5000 weeks" should not be accepted). */
export const MAX_RELATIVE_DAYS = 366;
const MAX_RELATIVE_MS = MAX_RELATIVE_DAYS * UNIT_MS.day;
const RELATIVE_WORDS = /^\s*(\d{1,6})\s*(second|minute|hour|day|week|month|year)s?\s*$/i;

/**
 * The relative-schedule grammar of DECISIONS: MPC's `"<n> <second|minute|hour|day|week|month|year>[s]"`
 * (months and years are calendar steps in UTC) or an ISO 8601 duration (`PT5M`, `P1DT2H`, `P2W`).
 * Answers the time it points to from `now`, or null when it does not parse.
 */
export function relativeTarget(input: string, now: Date): Date | null {
  const words = RELATIVE_WORDS.exec(input);
  if (words) {
    const n = Number(words[1]);
    const unit = words[2].toLowerCase();
    if (unit === 'month' || unit === 'year') {
      const d = new Date(now.getTime());
      const months = unit === 'year' ? 12 * n : n;
      // A calendar step keeps the day of the month, or the month's last day when it has fewer.
      const day = d.getUTCDate();
      d.setUTCDate(1);
      d.setUTCMonth(d.getUTCMonth() + months);
      const last = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate();
      d.setUTCDate(Math.min(day, last));
      return d;
    }
    return new Date(now.getTime() + n * UNIT_MS[unit as keyof typeof UNIT_MS]);
  }
  const isoMatch = /^P(?:(\d{1,6})W)?(?:(\d{1,6})D)?(?:T(?:(\d{1,6})H)?(?:(\d{1,6})M)?(?:(\d{1,6})S)?)?$/.exec(input.trim());
  if (!isoMatch || input.trim() === 'P' || input.trim().endsWith('T')) return null;
  const [, w, d, h, m, sec] = isoMatch.map((x) => (x === undefined ? 0 : Number(x)));
  return new Date(now.getTime() + w * UNIT_MS.week + d * UNIT_MS.day + h * UNIT_MS.hour + m * UNIT_MS.minute + sec * UNIT_MS.second);
}

function checkSchedule(v: Violations, path: Path, s: ScheduleInput): void {
  switch (s.type) {
    case 'immediate':
      if (s.at !== undefined) v.add([...path, 'at'], 'not_permitted');
      if (s.in !== undefined) v.add([...path, 'in'], 'not_permitted');
      break;
    case 'absolute':
      if (s.at === undefined) v.add([...path, 'at'], 'blank');
      if (s.in !== undefined) v.add([...path, 'in'], 'not_permitted');
      break;
    case 'relative': {
      if (s.at !== undefined) v.add([...path, 'at'], 'not_permitted');
      if (s.in === undefined) v.add([...path, 'in'], 'blank');
      else {
        const now = new Date();
        const at = relativeTarget(s.in, now);
        if (at === null) v.add([...path, 'in'], 'invalid_format', { format: '<n> <second|minute|hour|day|week|month|year>[s] | ISO 8601 duration' });
        else if (at.getTime() - now.getTime() > MAX_RELATIVE_MS) v.add([...path, 'in'], 'less_or_equal_to', { number: MAX_RELATIVE_DAYS });
      }
      break;
    }
  }
}

/**
 * How long after `scheduled_at` a sending may still start (DECISIONS "Failure"); later it fails
 * with `not_started_in_time` instead of going out late.
 */
export const LATE_AFTER_MS = 20 * 60_000;

/**
 * A sending that would be scheduled for a time already beyond the late window would only turn
 * `failed`: refused at create/update instead (a time within the window starts at once).
 */
function checkNotTooLate(v: Violations, path: Path, input: SendingInput, current: { draft: boolean; schedule: ScheduleInput | null } | undefined, now: Date): void {
  const draft = input.draft ?? current?.draft ?? false;
  const becomesScheduled = input.schedule !== undefined || (current?.draft === true && !draft);
  const schedule = input.schedule === undefined ? current?.schedule : input.schedule;
  if (draft || !becomesScheduled || schedule?.type !== 'absolute' || schedule.at === undefined) return;
  const at = Date.parse(schedule.at);
  if (at < now.getTime() - LATE_AFTER_MS) v.add(path, 'too_far_in_the_past', { max_minutes: LATE_AFTER_MS / 60_000 });
}

/** The execution time a schedule stands for, relative to `now`. */
export function scheduledAtFor(s: ScheduleInput, now: Date): Date {
  switch (s.type) {
    case 'immediate':
      return now;
    case 'absolute':
      return new Date(s.at!);
    case 'relative':
      return relativeTarget(s.in!, now) ?? now;
  }
}

// ---------- payload checks ----------

/** The docs once wrote a stored audience as `{"type":"inline","id":15}`: an id means reference. */
export function normaliseAudience(a: AudienceInput | null | undefined): AudienceInput | null | undefined {
  if (a && a.type === 'inline' && a.id !== undefined && a.conditions === undefined) return { type: 'reference', id: a.id };
  return a;
}

function checkAudienceShape(v: Violations, path: Path, a: AudienceInput): void {
  switch (a.type) {
    case 'reference':
      if (a.id === undefined) v.add([...path, 'id'], 'blank');
      if (a.conditions !== undefined) v.add([...path, 'conditions'], 'not_permitted');
      break;
    case 'inline':
      if (a.id !== undefined) v.add([...path, 'id'], 'not_permitted');
      if (a.conditions === undefined) v.add([...path, 'conditions'], 'blank');
      else if (a.conditions.length === 0) v.add([...path, 'conditions'], 'too_short', { min_length: 1 });
      break;
  }
}

/** The push identifier of a recipient: MPC's `app_token`, or Hei's earlier alias `push_token`. */
export const appTokenOf = (r: RecipientInput): string | undefined => r.app_token ?? r.push_token;

const IDENTIFIER_OF: Record<ChannelType, 'msisdn' | 'email' | 'app_token'> = { sms: 'msisdn', email: 'email', push: 'app_token' };

/**
 * A recipient names a member or carries an identifier for at least one channel of the message
 * (DECISIONS "Recipients"); with `member_id` the other identifiers are ignored.
 */
function checkRecipient(v: Violations, path: Path, r: RecipientInput, channels: readonly ChannelType[] | null): void {
  if (r.app_token !== undefined && r.push_token !== undefined) v.add([...path, 'push_token'], 'attribute_cannot_be_present_with', { with: 'app_token' });
  if (r.member_id !== undefined) return;
  const given = { msisdn: r.msisdn, email: r.email, app_token: appTokenOf(r) };
  if (given.msisdn === undefined && given.email === undefined && given.app_token === undefined) {
    v.add([...path, 'base'], 'recipient_must_have_member_id_or_address');
  } else if (channels && !channels.some((c) => given[IDENTIFIER_OF[c]] !== undefined)) {
    v.add([...path, 'base'], 'recipient_must_have_identifier_for_channels', { channels: [...channels] });
  }
}

/** The channel types of a stored message, in order. */
export async function messageChannelTypes(db: Queryable, messageId: number): Promise<ChannelType[]> {
  const { rows } = await db.query<{ type: ChannelType }>('SELECT type FROM message_channels WHERE message_id = $1 ORDER BY position, id', [messageId]);
  return rows.map((r) => r.type);
}

/** The caller's permits as they matter to a sending payload. */
export function checkSendingPermits(permits: Set<string>, input: SendingInput | undefined): void {
  if (input?.priority !== undefined && !permits.has(PERMIT_SET_PRIORITY)) throw forbidden(`Not authorized: permit ${PERMIT_SET_PRIORITY} required to set priority`);
}

/**
 * Everything about a sending payload that needs no other record: schedule grammar, audience shape
 * and conditions, recipients' identifiers, and audience-or-recipients (with `current` for updates).
 */
export async function checkSendingPayload(
  db: Queryable,
  club: LoyaltyClub,
  v: Violations,
  path: Path,
  input: SendingInput,
  /** The message's channels (recipients need an identifier for one of them); null: not known yet. */
  channels: readonly ChannelType[] | null,
  current?: { hasAudience: boolean; recipientsCount: number; draft: boolean; schedule: ScheduleInput | null },
  now = new Date(),
): Promise<void> {
  if (input.schedule) checkSchedule(v, [...path, 'schedule'], input.schedule);
  checkNotTooLate(v, [...path, 'schedule', 'at'], input, current, now);
  const audience = normaliseAudience(input.audience);
  if (audience) {
    checkAudienceShape(v, [...path, 'audience'], audience);
    if (audience.type === 'inline' && audience.conditions?.length) {
      const schema = await loadMemberSchema(db, club.id);
      const cv = validateConditions(audience.conditions, schema);
      if (cv.empty) v.merge([...path, 'audience', 'conditions'], await checkGroupsExist(db, club.id, audience.conditions as AudienceCondition[]));
      else v.merge([...path, 'audience', 'conditions'], cv);
    }
  }
  const recipients = input.recipients ?? [];
  recipients.forEach((r, i) => checkRecipient(v, [...path, 'recipients', i], r, channels));
  const memberIds = [...new Set(recipients.flatMap((r) => (r.member_id !== undefined ? [r.member_id] : [])))];
  if (memberIds.length) {
    const { rows } = await db.query<{ id: number }>('SELECT id FROM members WHERE loyalty_club_id = $1 AND id = ANY($2::bigint[])', [club.id, memberIds]);
    const known = new Set(rows.map((r) => r.id));
    recipients.forEach((r, i) => {
      if (r.member_id !== undefined && !known.has(r.member_id)) v.add([...path, 'recipients', i, 'member_id'], 'does_not_exist');
    });
  }
  const hasAudience = audience === undefined ? (current?.hasAudience ?? false) : audience !== null;
  const recipientCount = input.recipients === undefined ? (current?.recipientsCount ?? 0) : input.recipients.length;
  if (!hasAudience && recipientCount === 0) v.add([...path, 'base'], 'sending_must_have_audience_or_recipients');
}

/**
 * A referenced audience must be the club's: another club's id is answered like a missing one,
 * 422 `referenced_audience_must_exist` at `audience.id` (DECISIONS "Counters and references").
 */
export async function checkAudienceExists(db: Queryable, clubId: number, v: Violations, path: Path, input: SendingInput): Promise<void> {
  const audience = normaliseAudience(input.audience);
  if (audience?.type === 'reference' && audience.id !== undefined && !(await findAudience(db, clubId, audience.id))) {
    v.add([...path, 'audience', 'id'], 'referenced_audience_must_exist');
  }
}

// ---------- store ----------

export interface SendingRow {
  id: number;
  loyalty_club_id: number;
  message_id: number;
  service: string;
  status: SendingStatus;
  draft: boolean;
  priority: number;
  channels_preference: ChannelType[] | null;
  schedule: ScheduleInput | null;
  scheduled_at: Date | null;
  audience_type: 'reference' | 'inline' | null;
  audience_id: number | null;
  audience_conditions: unknown[] | null;
  properties: Record<string, unknown>;
  members_count: number;
  recipients_count: number;
  /** Null until the sending is executed (preparation begun). */
  dispatches_count: number | null;
  clicks_count: number;
  unique_clicks_count: number;
  opens_count: number;
  /** Set by the delivery engine on an error burst; cleared by Resume Sending. */
  paused: boolean;
  status_reason: StatusReason | null;
  /** Dispatches a Cancel Sending stopped; null until one arrives. */
  cancelled_dispatches_count: number | null;
  /** The transport the engine waits for (null = up; DECISIONS "Faults"). */
  transport_state: TransportOutage | null;
  /** Dispatches that may have gone out twice (taken over after a crash). */
  possible_duplicates: number;
  transmitted_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

const SENDING_COLUMNS = `s.id, s.loyalty_club_id, s.message_id, m.service, s.status, s.draft, s.priority, s.channels_preference,
  s.schedule, s.scheduled_at, s.audience_type, s.audience_id, s.audience_conditions, s.properties, s.members_count,
  s.recipients_count, s.dispatches_count, s.clicks_count, s.unique_clicks_count, s.opens_count, s.paused, s.status_reason, s.cancelled_dispatches_count,
  s.transport_state, s.possible_duplicates, s.transmitted_at,
  s.created_at, s.updated_at`;

/** A sending of the club under the service of its message; null otherwise. */
export async function findSending(db: Queryable, clubId: number, service: string, id: number, lock = false): Promise<SendingRow | null> {
  const { rows } = await db.query<SendingRow>(
    `SELECT ${SENDING_COLUMNS} FROM sendings s JOIN messages m ON m.id = s.message_id
      WHERE s.id = $1 AND s.loyalty_club_id = $2 AND m.service = $3 ${lock ? 'FOR UPDATE OF s' : ''}`,
    [id, clubId, service],
  );
  return rows[0] ?? null;
}

export async function listSendings(db: Queryable, messageId: number, orderLimit: string): Promise<{ rows: SendingRow[]; total: number }> {
  return selectPage<SendingRow>(db, SENDING_COLUMNS, 'FROM sendings s JOIN messages m ON m.id = s.message_id WHERE s.message_id = $1', orderLimit, [messageId]);
}

function statusFor(draft: boolean, schedule: ScheduleInput | null): SendingStatus {
  return draft || !schedule ? 'draft' : 'scheduled';
}

/** `scheduled_at`: the planned time for a scheduled sending; for a draft only a fixed (absolute) time. */
function scheduledAt(status: SendingStatus, schedule: ScheduleInput | null, now: Date): Date | null {
  if (!schedule) return null;
  if (status === 'scheduled') return scheduledAtFor(schedule, now);
  return schedule.type === 'absolute' ? new Date(schedule.at!) : null;
}

async function replaceRecipients(db: Queryable, sendingId: number, recipients: RecipientInput[]): Promise<void> {
  await db.query('DELETE FROM sending_recipients WHERE sending_id = $1', [sendingId]);
  if (!recipients.length) return;
  const normalised = recipients.map((r) => ({
    member_id: r.member_id ?? null,
    email: r.email?.toLowerCase() ?? null,
    msisdn: r.msisdn ?? null,
    push_token: appTokenOf(r) ?? null,
    properties: r.properties ?? {},
  }));
  // One statement for any number of recipients: the list travels as one JSON parameter.
  await db.query(
    `INSERT INTO sending_recipients (sending_id, position, member_id, email, msisdn, push_token, properties)
     SELECT $1, r.pos - 1, (r.x->>'member_id')::bigint, r.x->>'email', r.x->>'msisdn', r.x->>'push_token', r.x->'properties'
       FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS r(x, pos)`,
    [sendingId, JSON.stringify(normalised)],
  );
}

function audienceColumns(a: AudienceInput | null) {
  if (!a) return { type: null, id: null, conditions: null };
  return a.type === 'reference' ? { type: 'reference', id: a.id!, conditions: null } : { type: 'inline', id: null, conditions: JSON.stringify(a.conditions) };
}

/** Inserts a sending (payload already checked): `scheduled` when it has a schedule and is no draft. */
export async function insertSending(db: Queryable, clubId: number, messageId: number, input: SendingInput, now = new Date()): Promise<number> {
  const draft = input.draft ?? false;
  const schedule = input.schedule ?? null;
  const status = statusFor(draft, schedule);
  const audience = audienceColumns(normaliseAudience(input.audience) ?? null);
  const recipients = input.recipients ?? [];
  const { rows } = await db.query<{ id: number }>(
    `INSERT INTO sendings (loyalty_club_id, message_id, status, draft, priority, channels_preference, schedule, scheduled_at,
       audience_type, audience_id, audience_conditions, properties, recipients_count)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id`,
    [
      clubId, messageId, status, draft, input.priority ?? 5, input.channels_preference ?? null,
      schedule ? JSON.stringify(schedule) : null, scheduledAt(status, schedule, now),
      audience.type, audience.id, audience.conditions, JSON.stringify(input.properties ?? {}), recipients.length,
    ],
  );
  await replaceRecipients(db, rows[0].id, recipients);
  return rows[0].id;
}

/** Update Sending: only draft and scheduled sendings; the rest answers 405 naming the status. */
export async function updateSending(db: Queryable, current: SendingRow, input: SendingInput, now = new Date()): Promise<void> {
  const draft = input.draft ?? current.draft;
  const schedule = input.schedule === undefined ? current.schedule : input.schedule;
  const status = statusFor(draft, schedule);
  // Keep the planned time unless what it is computed from changed.
  const recompute = input.schedule !== undefined || status !== current.status;
  const at = recompute ? scheduledAt(status, schedule, now) : current.scheduled_at;
  const audienceInput = normaliseAudience(input.audience);
  const audience =
    audienceInput === undefined
      ? { type: current.audience_type, id: current.audience_id, conditions: current.audience_conditions ? JSON.stringify(current.audience_conditions) : null }
      : audienceColumns(audienceInput);
  await db.query(
    `UPDATE sendings SET status = $2, draft = $3, priority = $4, channels_preference = $5, schedule = $6, scheduled_at = $7,
       audience_type = $8, audience_id = $9, audience_conditions = $10, properties = $11,
       recipients_count = $12, updated_at = now()
     WHERE id = $1`,
    [
      current.id, status, draft, input.priority ?? current.priority,
      input.channels_preference === undefined ? current.channels_preference : input.channels_preference,
      schedule ? JSON.stringify(schedule) : null, at, audience.type, audience.id, audience.conditions,
      JSON.stringify(input.properties ?? current.properties), input.recipients === undefined ? current.recipients_count : input.recipients.length,
    ],
  );
  if (input.recipients !== undefined) await replaceRecipients(db, current.id, input.recipients);
}

export function assertEditable(s: SendingRow): void {
  if (!EDITABLE.includes(s.status)) throw notAllowed(`Sending is ${s.status} and can no longer be updated`);
}

/**
 * Cancel Sending: only while executing; it stops every dispatch not yet handed to a transport and
 * says how many (`cancelled_dispatches_count`). While preparing or prepared the whole sending is
 * stopped. A transmitting sending with nothing left to stop — every dispatch already handed over —
 * is not labelled `cancelled`: it keeps its status (and ends `transmitted`), with
 * `status_reason: cancel_too_late` and a count of 0.
 */
export async function cancelSending(db: Queryable, s: SendingRow): Promise<void> {
  if (!CANCELLABLE.includes(s.status)) throw notAllowed(`Sending is ${s.status} and cannot be cancelled`);
  const { rows } = await db.query<{ n: number }>(
    `WITH stopped AS (
       UPDATE dispatches SET status = 'cancelled', updated_at = now() WHERE sending_id = $1 AND status = 'pending' RETURNING 1
     ) SELECT count(*)::int AS n FROM stopped`,
    [s.id],
  );
  const stopped = rows[0].n;
  if (s.status === 'transmitting' && stopped === 0) {
    await db.query(`UPDATE sendings SET status_reason = 'cancel_too_late', cancelled_dispatches_count = 0, updated_at = now() WHERE id = $1`, [s.id]);
    return;
  }
  await db.query(
    `UPDATE sendings SET status = 'cancelled', status_reason = 'cancelled_by_user', cancelled_dispatches_count = $2,
            cancelled_at = now(), finished_at = now(), updated_at = now()
      WHERE id = $1`,
    [s.id, stopped],
  );
}

// ---------- serialisation ----------

type Stats = Record<DispatchStatus, number>;

export async function dispatchStats(db: Queryable, ids: number[]): Promise<Map<number, Stats>> {
  const out = new Map<number, Stats>();
  for (const id of ids) out.set(id, Object.fromEntries(DISPATCH_STATUSES.map((s) => [s, 0])) as Stats);
  if (!ids.length) return out;
  const { rows } = await db.query<{ sending_id: number; status: DispatchStatus; n: number }>(
    'SELECT sending_id, status, count(*)::int AS n FROM dispatches WHERE sending_id = ANY($1::bigint[]) GROUP BY sending_id, status',
    [ids],
  );
  for (const r of rows) out.get(r.sending_id)![r.status] = r.n;
  return out;
}

/** The inline recipients of sendings as MPC shows them: every identifier key, null when absent. */
export async function recipientsOf(db: Queryable, sendingId: number) {
  const { rows } = await db.query<{ member_id: number | null; msisdn: string | null; email: string | null; push_token: string | null; properties: Record<string, unknown> }>(
    'SELECT member_id, msisdn, email, push_token, properties FROM sending_recipients WHERE sending_id = $1 ORDER BY position, id',
    [sendingId],
  );
  return rows.map((r) => ({ member_id: r.member_id === null ? null : Number(r.member_id), msisdn: r.msisdn, email: r.email, app_token: r.push_token, properties: r.properties }));
}

/** A sending in lists: the resource without its inline `recipients` (List Message Sendings). */
export function serializeSending(s: SendingRow, stats: Stats) {
  const audience =
    s.audience_type === 'reference'
      ? { type: 'reference', id: s.audience_id! }
      : s.audience_type === 'inline'
        ? { type: 'inline', conditions: s.audience_conditions ?? [] }
        : null;
  return {
    id: s.id,
    message_id: s.message_id,
    service: s.service,
    status: s.status,
    draft: s.draft,
    priority: s.priority,
    channels_preference: s.channels_preference,
    schedule: s.schedule,
    scheduled_with: s.schedule,
    audience,
    audience_id: s.audience_id,
    properties: s.properties,
    recipients_count: s.recipients_count,
    dispatches_count: s.dispatches_count,
    members_count: s.members_count,
    stats: { ...stats, clicks: s.clicks_count, unique_clicks: s.unique_clicks_count, opens: s.opens_count },
    paused: s.paused,
    status_reason: s.status_reason,
    cancelled_dispatches_count: s.cancelled_dispatches_count,
    transport_state: s.transport_state,
    possible_duplicates: s.possible_duplicates,
    scheduled_at: iso(s.scheduled_at),
    transmitted_at: iso(s.transmitted_at),
    created_at: iso(s.created_at)!,
    updated_at: iso(s.updated_at)!,
  };
}

/** The sending resource (show, create, update, cancel, resume): with its inline `recipients`. */
export async function loadSendingResponse(db: Queryable, clubId: number, service: string, id: number) {
  const s = await findSending(db, clubId, service, id);
  if (!s) throw new ApiError(404, 'Sending not found');
  const stats = await dispatchStats(db, [s.id]);
  return { ...serializeSending(s, stats.get(s.id)!), recipients: await recipientsOf(db, s.id) };
}

// ---------- service functions behind the routes ----------

/** Update Sending: 404 → 405 (status) → 422 (payload) → 404 (audience), in one transaction. */
export async function updateSendingFor(db: Database, club: LoyaltyClub, permits: Set<string>, service: string, id: number, input: SendingInput): Promise<void> {
  checkSendingPermits(permits, input);
  await db.transaction(async (tx) => {
    const current = await findSending(tx, club.id, service, id, true);
    if (!current) throw new ApiError(404, 'Sending not found');
    assertEditable(current);
    const v = new Violations();
    const channels = await messageChannelTypes(tx, current.message_id);
    await checkSendingPayload(tx, club, v, ['sending'], input, channels, {
      hasAudience: current.audience_type !== null,
      recipientsCount: current.recipients_count,
      draft: current.draft,
      schedule: current.schedule,
    });
    v.throwIfAny();
    await checkAudienceExists(tx, club.id, v, ['sending'], input);
    v.throwIfAny();
    await updateSending(tx, current, input);
  });
}

/**
 * Lock class of a sending's hand-over (the second key is the sending id). The delivery engine
 * holds it shared while it hands a batch to a transport; Cancel takes it exclusively first.
 * Advisory locks queue fairly, unlike row locks: once a Cancel waits, no new batch of that sending
 * can slip in ahead of it, so a cancel stops the work within the one batch in flight.
 * The second key is an int4: ids beyond it fold onto it (`HANDOVER_LOCK_ID`), sharing a lock at worst.
 */
export const SENDING_HANDOVER_LOCK = 4815;
export const HANDOVER_LOCK_ID = '($2::bigint % 2147483647)::int';

export async function cancelSendingFor(db: Database, clubId: number, service: string, id: number): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.query(`SELECT pg_advisory_xact_lock($1, ${HANDOVER_LOCK_ID})`, [SENDING_HANDOVER_LOCK, id]);
    const current = await findSending(tx, clubId, service, id, true);
    if (!current) throw new ApiError(404, 'Sending not found');
    await cancelSending(tx, current);
  });
}

/**
 * Resume Sending (Hei, beyond MPC): a transmitting sending that the delivery engine paused on an
 * error burst goes on. Anything else → 405 naming its status. The engine's burst detector forgot
 * the sending's window when it paused it, so the sending is judged on fresh results.
 */
export async function resumeSendingFor(db: Database, clubId: number, service: string, id: number): Promise<void> {
  await db.transaction(async (tx) => {
    const current = await findSending(tx, clubId, service, id, true);
    if (!current) throw new ApiError(404, 'Sending not found');
    if (!current.paused) throw notAllowed(`Sending is ${current.status} and not paused`);
    if (current.status !== 'transmitting') throw notAllowed(`Sending is ${current.status} and cannot be resumed`);
    await tx.query(`UPDATE sendings SET paused = false, status_reason = NULL, updated_at = now() WHERE id = $1`, [current.id]);
  });
}

export const DISPATCH_SORT = { id: 'id', created_at: 'created_at', updated_at: 'updated_at', transmitted_at: 'sent_at', sent_at: 'sent_at' };

// MPC's two statuses of a dispatch (DECISIONS "Dispatch"), derived from Hei's one status.
const TRANSMISSION_STATUS_SQL = `CASE WHEN status IN ('pending', 'sending') THEN 'scheduled' WHEN sent_at IS NOT NULL THEN 'transmitted' ELSE 'failed' END`;
const DELIVERY_STATUS_SQL = `CASE WHEN status = 'delivered' THEN 'delivered' WHEN status IN ('failed', 'undeliverable') AND sent_at IS NOT NULL THEN 'failed' ELSE 'pending' END`;
export const TRANSMISSION_STATUSES = ['scheduled', 'transmitted', 'failed'] as const;
export const DELIVERY_STATUSES = ['pending', 'delivered', 'failed'] as const;

export type DispatchesQuery = ListQuery & {
  status?: string[];
  transmission_status?: string;
  delivery_status?: string;
  member_id?: number;
  msisdn?: string;
  email?: string;
  app_token?: string;
};

/** List Sending Dispatches with MPC's fields and filters; Hei's `status`, `skip_reason`, `error` beside them. */
export async function listDispatches(db: Queryable, sending: Pick<SendingRow, 'id' | 'scheduled_at'>, q: DispatchesQuery) {
  const params: unknown[] = [sending.id];
  const where = ['sending_id = $1'];
  const param = (v: unknown) => `$${params.push(v)}`;
  if (q.status?.length) where.push(`status = ANY(${param(q.status)}::text[])`);
  if (q.transmission_status !== undefined) where.push(`${TRANSMISSION_STATUS_SQL} = ${param(q.transmission_status)}`);
  if (q.delivery_status !== undefined) where.push(`${DELIVERY_STATUS_SQL} = ${param(q.delivery_status)}`);
  if (q.member_id !== undefined) where.push(`member_id = ${param(q.member_id)}`);
  if (q.msisdn !== undefined) where.push(`msisdn = ${param(q.msisdn)}`);
  if (q.email !== undefined) where.push(`email = ${param(q.email.toLowerCase())}`);
  if (q.app_token !== undefined) where.push(`push_token = ${param(q.app_token)}`);
  const { rows, total } = await selectPage<any>(
    db,
    `id, channel AS type, content, member_id, msisdn, email, push_token AS app_token,
     ${TRANSMISSION_STATUS_SQL} AS transmission_status, ${DELIVERY_STATUS_SQL} AS delivery_status, external_delivery_status,
     next_attempt_at, sent_at AS transmitted_at, delivered_at, cleaned_at,
     sending_id, status, skip_reason, error, provider_id, attempts, failed_at, created_at, updated_at`,
    `FROM dispatches WHERE ${where.join(' AND ')}`,
    `${orderBy(q, DISPATCH_SORT, { by: 'id' })} ${limitOffset(q)}`,
    params,
  );
  return {
    dispatches: rows.map(({ next_attempt_at, ...d }) => ({
      ...d,
      // The next attempt of a dispatch waiting for a retry, else the sending's time.
      scheduled_at: iso(next_attempt_at ?? sending.scheduled_at),
      transmitted_at: iso(d.transmitted_at),
      delivered_at: iso(d.delivered_at),
      cleaned_at: iso(d.cleaned_at),
      failed_at: iso(d.failed_at),
      created_at: iso(d.created_at)!,
      updated_at: iso(d.updated_at)!,
    })),
    pagination_info: paginationInfo(total, q.page_no, q.per_page),
  };
}

/** List Sending Members: the distinct members a sending has a dispatch for, with their current addresses. */
export async function listDispatchMembers(db: Queryable, sendingId: number, q: ListQuery) {
  const { rows, total } = await selectPage<any>(
    db,
    `d.member_id AS id, d.channel AS type, m.msisdn, m.email,
     ARRAY(SELECT t.token FROM member_push_tokens t WHERE t.member_id = d.member_id ORDER BY t.id DESC) AS app_tokens`,
    'FROM dispatches d JOIN members m ON m.id = d.member_id WHERE d.sending_id = $1',
    `ORDER BY d.member_id ${limitOffset(q)}`,
    [sendingId],
  );
  return { dispatch_members: rows.map((r) => ({ ...r, id: Number(r.id) })), pagination_info: paginationInfo(total, q.page_no, q.per_page) };
}
