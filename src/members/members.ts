// Members of a loyalty club (members-api §2): the stored row, its API representation, and the
// create / update / delete / find operations used by the HTTP endpoints and the seed.
import { stripMemberDispatches } from '../messaging/personal-data.ts';
import { randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { Database, Queryable } from '../db/connection.ts';
import { notFound, Violations } from '../platform/errors.ts';
import { loadMemberSchema, type MemberSchema } from './schema.ts';
import { limitOffset, selectPage } from '../platform/pagination.ts';
import { resolveChannelStatuses, resolveMemberState, normaliseEmail, normaliseMsisdn, type ChannelSwitches, type Member } from './member-input.ts';
import { enqueueMemberEvents } from './webhooks.ts';
import { iso } from '../platform/schema.ts';

export type { Member };

const scrypt = promisify(scryptCb) as (password: string, salt: Buffer, keylen: number) => Promise<Buffer>;


/**
 * The columns of the representation. Arrays of bigint go through jsonb so that both drivers
 * return JS numbers.
 */
export const MEMBER_SELECT = `m.id, m.properties, m.consents, m.sms_status, m.email_status, m.push_status,
  m.optin_channel, m.optin_subchannel, m.created_at, m.updated_at, m.banned_until, m.person_id,
  (m.password_hash IS NOT NULL) AS has_password, to_jsonb(m.subunit_ids) AS subunit_ids,
  EXISTS (SELECT 1 FROM member_push_tokens t WHERE t.member_id = m.id) AS has_push_token,
  to_jsonb(m.social_logins) AS social_logins, to_jsonb(m.favorite_stores) AS favorite_stores,
  COALESCE((SELECT jsonb_agg(g.group_id ORDER BY g.group_id) FROM member_group_memberships g WHERE g.member_id = m.id), '[]'::jsonb) AS group_ids`;


export function toMember(row: Record<string, any>): Member {
  return {
    id: row.id,
    properties: row.properties,
    consents: row.consents,
    sms_status: row.sms_status,
    email_status: row.email_status,
    push_status: row.push_status,
    optin_channel: row.optin_channel,
    optin_subchannel: row.optin_subchannel,
    created_at: iso(row.created_at)!,
    updated_at: iso(row.updated_at)!,
    banned_until: iso(row.banned_until),
    person_id: row.person_id == null ? null : Number(row.person_id),
    has_password: row.has_password,
    subunit_ids: row.subunit_ids,
    has_push_token: row.has_push_token,
    social_logins: row.social_logins,
    favorite_stores: row.favorite_stores,
    group_ids: row.group_ids,
  };
}

export async function findMember(db: Queryable, clubId: number, id: number): Promise<Member | null> {
  const { rows } = await db.query(`SELECT ${MEMBER_SELECT} FROM members m WHERE m.loyalty_club_id = $1 AND m.id = $2`, [clubId, id]);
  return rows[0] ? toMember(rows[0]) : null;
}

export async function getMember(db: Queryable, clubId: number, id: number): Promise<Member> {
  const member = await findMember(db, clubId, id);
  if (!member) throw notFound('Member');
  return member;
}

/** Lookup by identifier; the value is normalised as stored (`+47 …` finds `47…`). */
export async function findMemberByIdentifier(db: Queryable, clubId: number, kind: 'email' | 'msisdn', raw: string): Promise<Member | null> {
  const value = kind === 'email' ? normaliseEmail(raw) : normaliseMsisdn(raw);
  if (value === null) return null;
  const column = kind === 'email' ? 'm.email' : 'm.msisdn';
  const { rows } = await db.query(`SELECT ${MEMBER_SELECT} FROM members m WHERE m.loyalty_club_id = $1 AND ${column} = $2`, [clubId, value]);
  return rows[0] ? toMember(rows[0]) : null;
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scrypt(password, salt, 32);
  return `scrypt$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [kind, salt, hash] = stored.split('$');
  if (kind !== 'scrypt' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const actual = await scrypt(password, Buffer.from(salt, 'base64'), expected.length);
  return timingSafeEqual(actual, expected);
}

/** Who is writing: `X-Product-Name` / `X-Subproduct-Name` of the request. */
export interface WriteSource {
  product: string;
  subproduct?: string | null;
}

export interface MemberWriteInput extends ChannelSwitches {
  properties?: Record<string, unknown>;
  consents?: Record<string, unknown>;
  password?: string | null;
  favorite_stores?: number[];
  subunit_ids?: number[];
  banned_until?: string | null;
  /** Server-assigned; accepted in payloads and ignored (MPC). */
  person_id?: unknown;
  ignore_required_properties?: boolean;
  validate_partially?: boolean;
  event_occurred_at?: string;
}

/** Identifiers already used by another member of the club → `taken`. */
async function checkIdentifiersFree(db: Queryable, clubId: number, properties: Record<string, unknown>, exceptId: number | null, v: Violations): Promise<void> {
  const email = typeof properties.email === 'string' ? properties.email : null;
  const msisdn = typeof properties.msisdn === 'string' ? properties.msisdn : null;
  if (!email && !msisdn) return;
  const { rows } = await db.query<{ email: string | null; msisdn: string | null }>(
    `SELECT email, msisdn FROM members WHERE loyalty_club_id = $1 AND (email = $2 OR msisdn = $3) AND id IS DISTINCT FROM $4`,
    [clubId, email, msisdn, exceptId],
  );
  for (const r of rows) {
    if (email && r.email === email) v.add(['properties', 'email'], 'taken');
    if (msisdn && r.msisdn === msisdn) v.add(['properties', 'msisdn'], 'taken');
  }
}

/** A unique-index race between the check and the write still answers 422, never 500. */
function uniqueViolation(err: unknown): Violations | null {
  const e = err as { code?: string; constraint?: string; message?: string };
  if (e?.code !== '23505') return null;
  const text = `${e.constraint ?? ''} ${e.message ?? ''}`;
  const v = new Violations();
  if (text.includes('members_club_email')) v.add(['properties', 'email'], 'taken');
  else if (text.includes('members_club_msisdn')) v.add(['properties', 'msisdn'], 'taken');
  else return null;
  return v;
}

export async function createMember(db: Database, clubId: number, input: MemberWriteInput, source: WriteSource, schema?: MemberSchema): Promise<Member> {
  schema ??= await loadMemberSchema(db, clubId);
  const now = new Date(input.event_occurred_at ?? Date.now()).toISOString();
  const v = new Violations();
  const state = resolveMemberState(schema, input, { ignoreRequired: input.ignore_required_properties, now }, v);
  v.throwIfAny();
  await checkIdentifiersFree(db, clubId, state.properties, null, v);
  v.throwIfAny();
  const statuses = resolveChannelStatuses(null, input, state.properties);
  const passwordHash = input.password ? await hashPassword(input.password) : null;
  try {
    return await db.transaction(async (tx) => {
      const { rows } = await tx.query<{ id: number }>(
        `INSERT INTO members (loyalty_club_id, properties, consents, sms_status, email_status, push_status, optin_channel,
                              optin_subchannel, banned_until, password_hash, subunit_ids, favorite_stores)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id`,
        [
          clubId, state.properties, state.consents, statuses.sms_status, statuses.email_status, statuses.push_status,
          source.product, source.subproduct ?? null, input.banned_until ?? null,
          passwordHash, dedupe(input.subunit_ids ?? []), dedupe(input.favorite_stores ?? []),
        ],
      );
      const member = (await findMember(tx, clubId, rows[0].id))!;
      await enqueueMemberEvents(tx, clubId, 'create', [{ before: null, after: member }], source.product, now);
      return member;
    });
  } catch (err) {
    const v2 = uniqueViolation(err);
    if (v2) v2.throwIfAny();
    throw err;
  }
}

const dedupe = (ids: number[]) => [...new Set(ids)];

/** Whether two representations differ in anything a client can see (timestamps aside). */
function changed(a: Member, b: Member): boolean {
  const strip = ({ updated_at: _u, ...rest }: Member) => rest;
  return JSON.stringify(strip(a)) !== JSON.stringify(strip(b));
}

export async function updateMember(db: Database, clubId: number, id: number, input: MemberWriteInput, source: WriteSource): Promise<Member> {
  const schema = await loadMemberSchema(db, clubId);
  const now = new Date(input.event_occurred_at ?? Date.now()).toISOString();
  const passwordHash = input.password ? await hashPassword(input.password) : undefined;
  try {
    return await db.transaction(async (tx) => {
      // Row lock: concurrent updates of one member apply one after the other.
      const { rows } = await tx.query<Record<string, any>>(
        `SELECT id, properties, consents, sms_status, email_status, push_status, email, msisdn
           FROM members WHERE loyalty_club_id = $1 AND id = $2 FOR UPDATE`,
        [clubId, id],
      );
      const current = rows[0];
      if (!current) throw notFound('Member');
      const before = (await findMember(tx, clubId, id))!;
      const v = new Violations();
      const state = resolveMemberState(schema, input, { existing: current as any, partial: input.validate_partially, now }, v);
      v.throwIfAny();
      await checkIdentifiersFree(tx, clubId, state.properties, id, v);
      v.throwIfAny();
      const statuses = resolveChannelStatuses(current as any, input, state.properties);
      await tx.query(
        `UPDATE members SET properties = $3, consents = $4, sms_status = $5, email_status = $6, push_status = $7,
                banned_until = CASE WHEN $8::boolean THEN $9::timestamptz ELSE banned_until END,
                password_hash = COALESCE($10, password_hash),
                subunit_ids = COALESCE($11::bigint[], subunit_ids),
                favorite_stores = COALESCE($12::bigint[], favorite_stores)
          WHERE loyalty_club_id = $1 AND id = $2`,
        [
          clubId, id, state.properties, state.consents, statuses.sms_status, statuses.email_status, statuses.push_status,
          input.banned_until !== undefined, input.banned_until ?? null,
          passwordHash ?? null,
          input.subunit_ids ? dedupe(input.subunit_ids) : null,
          input.favorite_stores ? dedupe(input.favorite_stores) : null,
        ],
      );
      let after = (await findMember(tx, clubId, id))!;
      if (!changed(before, after) && passwordHash === undefined) return before;
      await tx.query('UPDATE members SET updated_at = $3 WHERE loyalty_club_id = $1 AND id = $2', [clubId, id, new Date()]);
      after = (await findMember(tx, clubId, id))!;
      await enqueueMemberEvents(tx, clubId, 'update', [{ before, after }], source.product, now);
      return after;
    });
  } catch (err) {
    const v2 = uniqueViolation(err);
    if (v2) v2.throwIfAny();
    throw err;
  }
}

/**
 * A dead address reported by a transport (hard bounce, unregistered push token): the channel is
 * marked `hard_bounced` (the token removed) when the member still has that address, and the change
 * is announced like any other update (members-changes webhooks, source `delivery`). Runs inside
 * the caller's transaction. Answers whether the member changed.
 */
export async function markAddressGone(tx: Queryable, gone: { memberId: number; channel: 'sms' | 'email' | 'push'; address: string }): Promise<boolean> {
  const { memberId, channel, address } = gone;
  const now = new Date();
  // The state before the write: the event carries only what changed (DECISIONS "Members").
  const { rows: club } = await tx.query<{ loyalty_club_id: number }>('SELECT loyalty_club_id FROM members WHERE id = $1', [memberId]);
  if (!club[0]) return false;
  const before = await findMember(tx, club[0].loyalty_club_id, memberId);
  const { rows } =
    channel === 'push'
      ? await tx.query<{ loyalty_club_id: number }>(
          `WITH removed AS (DELETE FROM member_push_tokens WHERE member_id = $1 AND token = $2 RETURNING member_id)
           UPDATE members SET updated_at = $3 WHERE id IN (SELECT member_id FROM removed) RETURNING loyalty_club_id`,
          [memberId, address, now],
        )
      : await tx.query<{ loyalty_club_id: number }>(
          channel === 'sms'
            ? `UPDATE members SET sms_status = 'hard_bounced', updated_at = $3 WHERE id = $1 AND msisdn = $2 AND sms_status IS DISTINCT FROM 'hard_bounced' RETURNING loyalty_club_id`
            : `UPDATE members SET email_status = 'hard_bounced', updated_at = $3 WHERE id = $1 AND email = $2 AND email_status IS DISTINCT FROM 'hard_bounced' RETURNING loyalty_club_id`,
          [memberId, address, now],
        );
  if (!rows[0]) return false;
  const clubId = rows[0].loyalty_club_id;
  const after = await findMember(tx, clubId, memberId);
  if (before && after) await enqueueMemberEvents(tx, clubId, 'update', [{ before, after }], 'delivery', now.toISOString());
  return true;
}

/** Deletes the member and answers it; its push tokens and group memberships go with it (ON DELETE CASCADE), its dispatches are stripped. */
export async function deleteMember(db: Database, clubId: number, id: number, source: WriteSource): Promise<Member> {
  return db.transaction(async (tx) => {
    const member = await findMember(tx, clubId, id);
    if (!member) throw notFound('Member');
    // Its messaging records lose the personal data first (DECISIONS "Personal data").
    await stripMemberDispatches(tx, clubId, id);
    await tx.query('DELETE FROM members WHERE loyalty_club_id = $1 AND id = $2', [clubId, id]);
    await enqueueMemberEvents(tx, clubId, 'delete', [{ before: member, after: null }], source.product, new Date().toISOString());
    return member;
  });
}

// ---- listing (members-api §5.1) ----

export interface MemberListQuery {
  page_no: number;
  per_page: number;
  ids?: number[];
  properties?: Record<string, string | string[]>;
  store_ids?: number[];
  search?: string;
  sort_by?: string[];
  sort_directions?: string[];
}

const STATIC_SORT: Record<string, string> = {
  id: 'm.id',
  created_at: 'm.created_at',
  updated_at: 'm.updated_at',
  email: 'm.email',
  msisdn: 'm.msisdn',
};

/** A query-string value (always text) as the JSON value stored for a property of that type. */
function filterValue(schema: MemberSchema, name: string, raw: string, path: Array<string | number>, v: Violations): unknown {
  const def = schema.properties[name];
  const type = def.type === 'array' ? def.items.type : def.type;
  const format = def.type === 'array' ? def.items.format : def.format;
  let value: unknown = raw;
  if (type === 'integer' || type === 'number') {
    value = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(value) || (type === 'integer' && !Number.isInteger(value))) return void v.add(path, 'invalid', { format: type });
  } else if (type === 'boolean') {
    if (raw !== 'true' && raw !== 'false') return void v.add(path, 'invalid', { format: 'boolean' });
    value = raw === 'true';
  } else if (format === 'msisdn') {
    value = normaliseMsisdn(raw);
    if (value === null) return void v.add(path, 'invalid_msisdn');
  } else if (format === 'email') {
    value = raw.trim().toLowerCase();
  }
  // Array properties match when they contain the value.
  return { [name]: def.type === 'array' ? [value] : value };
}

export async function listMembers(db: Queryable, clubId: number, q: MemberListQuery): Promise<{ members: Member[]; total: number }> {
  const schema = await loadMemberSchema(db, clubId);
  const v = new Violations();
  const params: unknown[] = [clubId];
  const p = (value: unknown) => {
    params.push(value);
    return `$${params.length}`;
  };
  const where = ['m.loyalty_club_id = $1'];
  if (q.ids?.length) where.push(`m.id = ANY (${p(q.ids)}::bigint[])`);
  if (q.store_ids?.length) where.push(`m.favorite_stores && ${p(q.store_ids)}::bigint[]`);
  for (const [name, raw] of Object.entries(q.properties ?? {})) {
    if (!schema.properties[name]) {
      v.add(['properties', name], 'not_permitted');
      continue;
    }
    if (typeof raw === 'object' && !Array.isArray(raw)) {
      v.add(['properties', name], 'invalid');
      continue;
    }
    const values = (Array.isArray(raw) ? raw : [raw]).map((r, i) => filterValue(schema, name, r, Array.isArray(raw) ? ['properties', name, i] : ['properties', name], v));
    if (values.length === 1) where.push(`m.properties @> ${p(JSON.stringify(values[0]))}::jsonb`);
    else where.push(`m.properties @> ANY (${p(values.map((x) => JSON.stringify(x)))}::jsonb[])`);
  }
  if (q.search !== undefined && q.search.trim() !== '') {
    const term = q.search.trim();
    const like = p(`%${term.replace(/[\\%_]/g, (c) => '\\' + c)}%`);
    const alternatives = [
      `m.email ILIKE ${like}`,
      `(m.properties ->> 'first_name') ILIKE ${like}`,
      `(m.properties ->> 'last_name') ILIKE ${like}`,
      `concat_ws(' ', m.properties ->> 'first_name', m.properties ->> 'last_name') ILIKE ${like}`,
    ];
    const msisdn = normaliseMsisdn(term);
    if (/^[\d\s+()-]+$/.test(term)) alternatives.push(`m.msisdn LIKE ${p(`%${term.replace(/\D/g, '')}%`)}`);
    if (msisdn) alternatives.push(`m.msisdn = ${p(msisdn)}`);
    if (/^\d{1,18}$/.test(term)) alternatives.push(`m.id = ${p(Number(term))}`);
    where.push(`(${alternatives.join(' OR ')})`);
  }
  // Sorting: fixed columns or `properties.<name>` of the schema; the property name is a parameter.
  const whereParams = params.length;
  const order: string[] = [];
  (q.sort_by ?? []).forEach((key, i) => {
    const dir = (q.sort_directions?.[i] ?? q.sort_directions?.at(-1) ?? 'asc') === 'desc' ? 'DESC' : 'ASC';
    if (Object.hasOwn(STATIC_SORT, key)) order.push(`${STATIC_SORT[key]} ${dir}`);
    else if (key.startsWith('properties.') && schema.properties[key.slice(11)]) order.push(`(m.properties -> ${p(key.slice(11))}) ${dir}`);
    else v.add(['sort_by', i], 'inclusion', { in: [...Object.keys(STATIC_SORT), ...Object.keys(schema.properties).sort().map((k) => `properties.${k}`)] });
  });
  v.throwIfAny();
  if (!(q.sort_by ?? []).includes('id')) order.push('m.id ASC');
  const { rows, total } = await selectPage<any>(
    db, MEMBER_SELECT, `FROM members m WHERE ${where.join(' AND ')}`, `ORDER BY ${order.join(', ')} ${limitOffset(q)}`, params, whereParams,
  );
  return { members: rows.map(toMember), total };
}

// ---- push tokens (has_push_token; read by the delivery engine) ----

export interface PushToken {
  id: number;
  token: string;
  platform: string | null;
  created_at: string;
}

const toPushToken = (r: Record<string, any>): PushToken => ({ id: r.id, token: r.token, platform: r.platform, created_at: iso(r.created_at)! });

/** Registers a token; registering it again answers the existing one. */
export async function registerPushToken(db: Queryable, clubId: number, memberId: number, token: string, platform: string): Promise<{ token: PushToken; created: boolean }> {
  await getMember(db, clubId, memberId);
  const inserted = await db.query(
    `INSERT INTO member_push_tokens (member_id, token, platform) VALUES ($1, $2, $3)
     ON CONFLICT (member_id, token) DO NOTHING RETURNING id, token, platform, created_at`,
    [memberId, token, platform],
  );
  if (inserted.rows[0]) return { token: toPushToken(inserted.rows[0]), created: true };
  const { rows } = await db.query('SELECT id, token, platform, created_at FROM member_push_tokens WHERE member_id = $1 AND token = $2', [memberId, token]);
  return { token: toPushToken(rows[0]), created: false };
}

export async function listPushTokens(db: Queryable, clubId: number, memberId: number): Promise<PushToken[]> {
  await getMember(db, clubId, memberId);
  const { rows } = await db.query('SELECT id, token, platform, created_at FROM member_push_tokens WHERE member_id = $1 ORDER BY id', [memberId]);
  return rows.map(toPushToken);
}

export async function deletePushToken(db: Queryable, clubId: number, memberId: number, tokenId: number): Promise<void> {
  await getMember(db, clubId, memberId);
  const r = await db.query('DELETE FROM member_push_tokens WHERE member_id = $1 AND id = $2', [memberId, tokenId]);
  if (r.rowCount !== 1) throw notFound('Push token');
}
