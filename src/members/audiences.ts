// Stored audiences and the resolution of stored-or-inline audiences into SQL, for the audiences API,
// the Messaging API (validation of sendings) and the delivery engine (dispatch preparation).
import type { Queryable } from '../db/connection.ts';
import { Violations } from '../platform/errors.ts';
import {
  compileAudience,
  validateConditions,
  type AudienceCondition,
  type CompiledConditions,
  type CompileOptions,
  type MemberSchemaLike,
} from './audience-conditions.ts';

export { compileAudience, validateConditions } from './audience-conditions.ts';
export type { AudienceCondition, CompiledConditions, CompileOptions, MemberSchemaLike } from './audience-conditions.ts';

export const CHANNELS = ['sms', 'email', 'push'] as const;
export type Channel = (typeof CHANNELS)[number];

export interface AudienceRecord {
  id: number;
  loyalty_club_id: number;
  name: string;
  conditions: AudienceCondition[];
  members_count: number | null;
  counted_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = 'id, loyalty_club_id, name, conditions, members_count, counted_at, created_at, updated_at';

/** The club's member schema (`loyalty_clubs.member_schema`), `{}` for an unknown club. */
export async function loadMemberSchema(db: Queryable, clubId: number): Promise<MemberSchemaLike> {
  const { rows } = await db.query<{ member_schema: MemberSchemaLike | null }>('SELECT member_schema FROM loyalty_clubs WHERE id = $1', [clubId]);
  return rows[0]?.member_schema ?? {};
}

/** A stored audience of this club; another club's id answers null, like a missing one. */
export async function findAudience(db: Queryable, clubId: number, id: number): Promise<AudienceRecord | null> {
  if (!Number.isSafeInteger(id) || id < 1) return null;
  const { rows } = await db.query<AudienceRecord>(`SELECT ${COLUMNS} FROM audiences WHERE loyalty_club_id = $1 AND id = $2`, [clubId, id]);
  return rows[0] ?? null;
}

export async function insertAudience(db: Queryable, clubId: number, input: { name: string; conditions: AudienceCondition[] }): Promise<AudienceRecord> {
  const { rows } = await db.query<AudienceRecord>(
    `INSERT INTO audiences (loyalty_club_id, name, conditions) VALUES ($1, $2, $3::jsonb) RETURNING ${COLUMNS}`,
    [clubId, input.name, JSON.stringify(input.conditions)],
  );
  return rows[0];
}

export async function updateAudience(db: Queryable, clubId: number, id: number, input: { name?: string; conditions?: AudienceCondition[] }): Promise<AudienceRecord | null> {
  const { rows } = await db.query<AudienceRecord>(
    `UPDATE audiences SET name = COALESCE($3, name), conditions = COALESCE($4::jsonb, conditions), updated_at = now()
      WHERE loyalty_club_id = $1 AND id = $2 RETURNING ${COLUMNS}`,
    [clubId, id, input.name ?? null, input.conditions === undefined ? null : JSON.stringify(input.conditions)],
  );
  return rows[0] ?? null;
}

export async function rememberCount(db: Queryable, id: number, count: number): Promise<void> {
  await db.query('UPDATE audiences SET members_count = $2, counted_at = now() WHERE id = $1', [id, count]);
}

/** How a sending names its audience (messaging-api §6.6). */
export type AudienceRef = { type: 'reference'; id: number } | { type: 'inline'; conditions: unknown };

export interface ResolvedAudience {
  /** The stored audience's id, null for inline conditions. */
  audienceId: number | null;
  conditions: AudienceCondition[];
  /** Predicate over `members m` (see `compileAudience`); the caller adds `m.loyalty_club_id = $x`. */
  sql: string;
  params: unknown[];
  nextParam: number;
  /** `member_schema -> 'consents'`: the fourth argument of `hei_member_reachable`. */
  schemaConsents: Record<string, unknown>;
}

/**
 * Resolves a stored-or-inline audience of a club into SQL. Answers null when a referenced audience
 * does not exist in this club. Throws `ValidationFailed` (paths relative to the conditions) when the
 * conditions do not fit the club's schema — for a stored audience this means the schema changed
 * since it was saved, and the sending cannot be prepared.
 *
 *   const a = await resolveAudience(db, clubId, ref, { firstParam: 3 });
 *   INSERT INTO dispatches (…) SELECT $1, m.id, … FROM members m
 *    WHERE m.loyalty_club_id = $2 AND (${a.sql}) AND hei_member_reachable(m, 'sms', true, $N)
 *   params: [sendingId, clubId, ...a.params, a.schemaConsents]   (N = a.nextParam)
 */
export async function resolveAudience(db: Queryable, clubId: number, ref: AudienceRef, opts: CompileOptions = {}): Promise<ResolvedAudience | null> {
  let conditions: unknown;
  let audienceId: number | null = null;
  if (ref.type === 'reference') {
    const stored = await findAudience(db, clubId, ref.id);
    if (!stored) return null;
    conditions = stored.conditions;
    audienceId = stored.id;
  } else conditions = ref.conditions;
  const schema = await loadMemberSchema(db, clubId);
  const compiled = compileAudience(conditions, schema, opts);
  await refreshAutomaticGroups(db, clubId, referencedGroupIds(conditions as AudienceCondition[]));
  return { audienceId, conditions: conditions as AudienceCondition[], ...compiled, schemaConsents: (schema.consents as Record<string, unknown>) ?? {} };
}

export interface AudienceCount {
  members_count: number;
  /** Present when a channel was asked for: members reachable on it (marketing or not). */
  reachable_count?: number;
  sample_member_ids: number[];
}

/**
 * Counts the members an audience selects (and how many of them are reachable on `channel`),
 * with up to `sampleSize` (10) matching member ids as a sample, in id order. `conditions` must fit `schema` (else `ValidationFailed`).
 */
export async function countAudience(
  db: Queryable,
  clubId: number,
  conditions: unknown,
  schema: MemberSchemaLike,
  opts: { channel?: Channel; marketing?: boolean; sampleSize?: number } = {},
): Promise<AudienceCount> {
  const c: CompiledConditions = compileAudience(conditions, schema, { firstParam: 2 });
  const params: unknown[] = [clubId, ...c.params];
  let reachable = '';
  if (opts.channel) {
    const n = c.nextParam;
    reachable = `, count(*) FILTER (WHERE hei_member_reachable(m, $${n}::text, $${n + 1}::boolean, $${n + 2}::jsonb))::int AS reachable_count`;
    params.push(opts.channel, opts.marketing ?? true, JSON.stringify(schema.consents ?? {}));
  }
  const where = `m.loyalty_club_id = $1 AND (${c.sql})`;
  const { rows } = await db.query<{ members_count: number; reachable_count?: number }>(
    `SELECT count(*)::int AS members_count${reachable} FROM members m WHERE ${where}`,
    params,
  );
  const sampleSize = Math.max(0, Math.floor(opts.sampleSize ?? 10));
  // Any few matches, not the lowest ids: a plain LIMIT stops at the first ones found, whereas
  // ORDER BY id would walk the primary key past every non-matching member when matches are rare.
  const sample = sampleSize > 0 && rows[0].members_count > 0
    ? (await db.query<{ id: number }>(
        `SELECT id FROM (SELECT m.id FROM members m WHERE ${where} LIMIT ${sampleSize}) s ORDER BY id`,
        [clubId, ...c.params],
      )).rows.map((r) => r.id)
    : [];
  const out: AudienceCount = { members_count: rows[0].members_count, sample_member_ids: sample };
  if (opts.channel) out.reachable_count = rows[0].reachable_count ?? 0;
  return out;
}

/**
 * Group conditions may only name groups of the club: 422 `does_not_exist` at the value otherwise.
 * Run after `validateConditions` passed; paths are relative to the conditions array.
 */
export async function checkGroupsExist(db: Queryable, clubId: number, conditions: AudienceCondition[]): Promise<Violations> {
  const v = new Violations();
  const refs = groupReferences(conditions);
  if (!refs.length) return v;
  const ids = [...new Set(refs.map((r) => r.id))];
  const { rows } = await db.query<{ id: number }>('SELECT id FROM member_groups WHERE loyalty_club_id = $1 AND id = ANY($2::bigint[])', [clubId, ids]);
  const known = new Set(rows.map((r) => r.id));
  for (const r of refs) if (!known.has(r.id)) v.add(r.path, 'does_not_exist');
  return v;
}

/** Where (valid) conditions name member groups. */
function groupReferences(conditions: AudienceCondition[]): Array<{ path: Array<string | number>; id: number }> {
  const refs: Array<{ path: Array<string | number>; id: number }> = [];
  const walk = (list: AudienceCondition[], path: Array<string | number>) =>
    list.forEach((c, i) => {
      if (c.condition_group === 'any_of') return walk(c.conditions, [...path, i, 'conditions']);
      if (c.field !== 'members_group_ids' || (c.condition_group !== 'groups' && c.condition_group !== 'member_properties')) return;
      if (Array.isArray(c.value)) c.value.forEach((id, j) => typeof id === 'number' && refs.push({ path: [...path, i, 'value', j], id }));
      else if (typeof c.value === 'number') refs.push({ path: [...path, i, 'value'], id: c.value });
    });
  walk(conditions, []);
  return refs;
}

export const referencedGroupIds = (conditions: AudienceCondition[]) => [...new Set(groupReferences(conditions).map((r) => r.id))];

/** The conditions behind an automatic group: its stored audience's, or its own. */
export const GROUP_CONDITIONS_SQL = `COALESCE((SELECT a.conditions FROM audiences a WHERE a.id = g.audience_id), g.audience_conditions, '[]'::jsonb)`;

/**
 * Materialises the memberships of the given automatic groups (manual ones are skipped) from their
 * audiences, groups they refer to first, and stores their counts. `seen` stops a cycle that an
 * audience edited after the fact might have made.
 */
export async function refreshAutomaticGroups(db: Queryable, clubId: number, groupIds: number[], seen = new Set<number>()): Promise<void> {
  const todo = groupIds.filter((id) => !seen.has(id));
  if (!todo.length) return;
  const { rows } = await db.query<{ id: number; conditions: AudienceCondition[] }>(
    `SELECT g.id, ${GROUP_CONDITIONS_SQL} AS conditions FROM member_groups g
      WHERE g.loyalty_club_id = $1 AND g.id = ANY ($2::bigint[]) AND g.automatic ORDER BY g.id`,
    [clubId, todo],
  );
  if (!rows.length) return;
  const schema = await loadMemberSchema(db, clubId);
  for (const row of rows) {
    const id = Number(row.id);
    if (seen.has(id)) continue;
    seen.add(id);
    await refreshAutomaticGroups(db, clubId, referencedGroupIds(row.conditions), seen);
    const c = compileAudience(row.conditions, schema, { firstParam: 3 });
    const selected = `SELECT m.id FROM members m WHERE m.loyalty_club_id = $2 AND (${c.sql})`;
    await db.query(`DELETE FROM member_group_memberships WHERE group_id = $1 AND member_id NOT IN (${selected})`, [id, clubId, ...c.params]);
    await db.query(`INSERT INTO member_group_memberships (group_id, member_id) SELECT $1, s.id FROM (${selected}) s ON CONFLICT DO NOTHING`, [id, clubId, ...c.params]);
    await db.query(
      `UPDATE member_groups SET members_count = (SELECT count(*) FROM member_group_memberships WHERE group_id = $1), counted_at = now() WHERE id = $1`,
      [id],
    );
  }
}

/**
 * Whether conditions for group `groupId` would make automatic groups refer to each other in a
 * cycle: following the automatic groups they name (and the groups those name) reaches `groupId`.
 */
export async function formsGroupCycle(db: Queryable, clubId: number, groupId: number, conditions: AudienceCondition[]): Promise<boolean> {
  const seen = new Set<number>();
  let frontier = referencedGroupIds(conditions);
  while (frontier.length) {
    if (frontier.includes(groupId)) return true;
    frontier.forEach((id) => seen.add(id));
    const { rows } = await db.query<{ conditions: AudienceCondition[] }>(
      `SELECT ${GROUP_CONDITIONS_SQL} AS conditions FROM member_groups g WHERE g.loyalty_club_id = $1 AND g.id = ANY ($2::bigint[]) AND g.automatic`,
      [clubId, frontier],
    );
    frontier = [...new Set(rows.flatMap((r) => referencedGroupIds(r.conditions)))].filter((id) => !seen.has(id));
  }
  return false;
}

/** Validation of an audience payload's conditions, merged under `prefix` (e.g. `['audience','conditions']`). */
export function conditionViolations(prefix: Array<string | number>, conditions: unknown, schema: MemberSchemaLike): Violations {
  return new Violations().merge(prefix, validateConditions(conditions, schema));
}

