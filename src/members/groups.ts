// Member groups as MPC documents them (2021 › Members Groups): manual groups whose members are
// added and removed one by one (or in bulk, Hei's extension), automatic groups backed by an
// audience (a stored one or their own conditions), and the club's system group "All members".
import type { Database, Queryable } from '../db/connection.ts';
import { notAllowed, notFound, Violations } from '../platform/errors.ts';
import { limitOffset, selectPage } from '../platform/pagination.ts';
import { findAudience, formsGroupCycle, checkGroupsExist, loadMemberSchema, refreshAutomaticGroups, validateConditions, type AudienceCondition } from './audiences.ts';

export interface MemberGroup {
  id: number;
  name: string;
  type: string | null;
  description: string | null;
  automatic: boolean;
  system: boolean;
  audience_id: number | null;
  audience_conditions: AudienceCondition[] | null;
  members_count: number;
  created_at: string;
  updated_at: string;
}

/** The `members_group` payload of create and update. */
export interface GroupInput {
  name?: string;
  type?: string | null;
  description?: string | null;
  system?: boolean;
  audience_id?: number | null;
  audience_conditions?: unknown;
}

const COLUMNS = `g.id, g.name, g.type, g.description, g.automatic, g.system, g.audience_id,
  COALESCE((SELECT a.conditions FROM audiences a WHERE a.id = g.audience_id), g.audience_conditions) AS audience_conditions,
  g.members_count, g.created_at, g.updated_at`;

const toGroup = (r: Record<string, any>): MemberGroup => ({
  id: Number(r.id),
  name: r.name,
  type: r.type,
  description: r.description,
  automatic: r.automatic,
  system: r.system,
  audience_id: r.audience_id === null ? null : Number(r.audience_id),
  audience_conditions: r.automatic ? r.audience_conditions ?? [] : null,
  members_count: r.members_count,
  created_at: new Date(r.created_at).toISOString(),
  updated_at: new Date(r.updated_at).toISOString(),
});

export const GROUP_SORT: Record<string, string> = { id: 'g.id', name: 'g.name', created_at: 'g.created_at', updated_at: 'g.updated_at' };

export interface GroupFilters {
  page_no: number;
  per_page: number;
  orderBy: string;
  ids?: number[];
  name?: string;
  type?: string;
  automatic?: boolean;
  system?: boolean;
  search?: string;
}

/** The list shows each group's stored count (show and sendings recompute automatic groups). */
export async function listGroups(db: Queryable, clubId: number, q: GroupFilters): Promise<{ groups: MemberGroup[]; total: number }> {
  const params: unknown[] = [clubId];
  const p = (value: unknown) => (params.push(value), `$${params.length}`);
  const where = ['g.loyalty_club_id = $1'];
  if (q.ids?.length) where.push(`g.id = ANY (${p(q.ids)}::bigint[])`);
  if (q.name !== undefined) where.push(`lower(g.name) = lower(${p(q.name)})`);
  if (q.type !== undefined) where.push(`g.type = ${p(q.type)}`);
  if (q.automatic !== undefined) where.push(`g.automatic = ${p(q.automatic)}`);
  if (q.system !== undefined) where.push(`g.system = ${p(q.system)}`);
  if (q.search !== undefined && q.search.trim() !== '') {
    const like = p(`%${q.search.trim().replace(/[\\%_]/g, (c) => '\\' + c)}%`);
    where.push(`(g.name ILIKE ${like} OR g.type ILIKE ${like} OR g.description ILIKE ${like})`);
  }
  const { rows, total } = await selectPage<any>(db, COLUMNS, `FROM member_groups g WHERE ${where.join(' AND ')}`, `${q.orderBy} ${limitOffset(q)}`, params);
  return { groups: rows.map(toGroup), total };
}

async function findGroup(db: Queryable, clubId: number, id: number): Promise<MemberGroup> {
  const { rows } = await db.query(`SELECT ${COLUMNS} FROM member_groups g WHERE g.loyalty_club_id = $1 AND g.id = $2`, [clubId, id]);
  if (!rows[0]) throw notFound('Members group');
  return toGroup(rows[0]);
}

/** One group with its count recomputed (automatic groups are materialised from their audience first). */
export async function getGroup(db: Queryable, clubId: number, id: number): Promise<MemberGroup> {
  const group = await findGroup(db, clubId, id);
  if (group.automatic) await refreshAutomaticGroups(db, clubId, [id]);
  else await db.query('UPDATE member_groups SET members_count = (SELECT count(*) FROM member_group_memberships WHERE group_id = $1), counted_at = now() WHERE id = $1', [id]);
  return findGroup(db, clubId, id);
}

/** `{name, system}` of every type the club's groups use. */
export async function listGroupTypes(db: Queryable, clubId: number): Promise<Array<{ name: string; system: boolean }>> {
  const { rows } = await db.query<{ name: string; system: boolean }>(
    'SELECT type AS name, bool_or(system) AS system FROM member_groups WHERE loyalty_club_id = $1 AND type IS NOT NULL GROUP BY type ORDER BY type',
    [clubId],
  );
  return rows;
}

async function nameTaken(db: Queryable, clubId: number, name: string, exceptId: number | null): Promise<boolean> {
  const { rows } = await db.query('SELECT 1 FROM member_groups WHERE loyalty_club_id = $1 AND lower(name) = lower($2) AND id IS DISTINCT FROM $3', [clubId, name, exceptId]);
  return rows.length > 0;
}

/**
 * Checks a payload and works out the audience behind it: `audience_id` (a stored audience of the
 * club) or `audience_conditions`, never both; null when the group stays manual.
 */
async function checkInput(db: Queryable, clubId: number, input: GroupInput, groupId: number | null): Promise<{ audienceId: number | null; conditions: AudienceCondition[] | null } | undefined> {
  const v = new Violations();
  const at = (key: string) => ['members_group', key];
  if (input.name !== undefined && (await nameTaken(db, clubId, input.name, groupId))) v.add(at('name'), 'taken');
  // System groups are MPC's (here: the migration's); no client makes one.
  if (input.system === true) v.add(at('system'), 'inclusion', { in: [false] });
  const hasId = input.audience_id !== undefined && input.audience_id !== null;
  const hasConditions = input.audience_conditions !== undefined && input.audience_conditions !== null;
  if (hasId && hasConditions) v.add(at('audience_conditions'), 'attribute_cannot_be_present_with', { with: 'audience_id' });
  let result: { audienceId: number | null; conditions: AudienceCondition[] | null } | undefined;
  if (hasId && !hasConditions) {
    const audience = await findAudience(db, clubId, input.audience_id!);
    if (!audience) v.add(at('audience_id'), 'referenced_audience_must_exist');
    else result = { audienceId: audience.id, conditions: audience.conditions };
  } else if (hasConditions && !hasId) {
    const schema = await loadMemberSchema(db, clubId);
    const found = validateConditions(input.audience_conditions, schema);
    if (!found.empty) v.merge(at('audience_conditions'), found);
    else {
      const conditions = input.audience_conditions as AudienceCondition[];
      v.merge(at('audience_conditions'), await checkGroupsExist(db, clubId, conditions));
      result = { audienceId: null, conditions };
    }
  } else if (input.audience_id === null || input.audience_conditions === null) {
    result = { audienceId: null, conditions: null };
  }
  if (result?.conditions && groupId !== null && (await formsGroupCycle(db, clubId, groupId, result.conditions))) {
    v.add(at('audience_conditions'), 'cyclic_group_reference');
  }
  v.throwIfAny();
  return result;
}

export async function createGroup(db: Database, clubId: number, input: GroupInput & { name: string }): Promise<MemberGroup> {
  const audience = await checkInput(db, clubId, input, null);
  const automatic = Boolean(audience?.conditions);
  const { rows } = await db.query<{ id: number }>(
    `INSERT INTO member_groups (loyalty_club_id, name, type, description, automatic, audience_id, audience_conditions)
     VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) RETURNING id`,
    [clubId, input.name, input.type ?? null, input.description ?? null, automatic, audience?.audienceId ?? null,
      automatic && audience!.audienceId === null ? JSON.stringify(audience!.conditions) : null],
  );
  return getGroup(db, clubId, Number(rows[0].id));
}

function refuseSystem(group: MemberGroup): void {
  if (group.system) throw notAllowed('System members group cannot be changed');
}

export async function updateGroup(db: Database, clubId: number, id: number, input: GroupInput): Promise<MemberGroup> {
  const current = await findGroup(db, clubId, id);
  refuseSystem(current);
  const audience = await checkInput(db, clubId, input, id);
  const keep = audience === undefined;
  const automatic = keep ? current.automatic : Boolean(audience.conditions);
  await db.query(
    `UPDATE member_groups SET name = $3, type = $4, description = $5, automatic = $6,
            audience_id = CASE WHEN $7::boolean THEN audience_id ELSE $8::bigint END,
            audience_conditions = CASE WHEN $7::boolean THEN audience_conditions ELSE $9::jsonb END, updated_at = now()
      WHERE loyalty_club_id = $1 AND id = $2`,
    [
      clubId, id, input.name ?? current.name, input.type === undefined ? current.type : input.type,
      input.description === undefined ? current.description : input.description, automatic, keep,
      audience?.audienceId ?? null, !keep && automatic && audience!.audienceId === null ? JSON.stringify(audience!.conditions) : null,
    ],
  );
  // A group turned manual keeps the members it had when it stopped being automatic.
  return getGroup(db, clubId, id);
}

/** Deletes the group and answers it; its membership rows go with it (ON DELETE CASCADE). */
export async function deleteGroup(db: Queryable, clubId: number, id: number): Promise<MemberGroup> {
  const group = await findGroup(db, clubId, id);
  refuseSystem(group);
  await db.query('DELETE FROM member_groups WHERE loyalty_club_id = $1 AND id = $2', [clubId, id]);
  return group;
}

/** Members of automatic groups come from their audience: adding or removing by hand → 405. */
async function manualGroup(db: Queryable, clubId: number, id: number): Promise<MemberGroup> {
  const group = await findGroup(db, clubId, id);
  if (group.automatic) throw notAllowed('Members of an automatic members group cannot be added or removed');
  return group;
}

const touch = (db: Queryable, groupId: number) =>
  db.query('UPDATE member_groups SET members_count = (SELECT count(*) FROM member_group_memberships WHERE group_id = $1), counted_at = now(), updated_at = now() WHERE id = $1', [groupId]);

/** Ids of `memberIds` that are no members of the club → 422 `does_not_exist` at their index. */
async function checkMembersOfClub(db: Queryable, clubId: number, memberIds: number[]): Promise<void> {
  const { rows } = await db.query<{ id: number }>('SELECT id FROM members WHERE loyalty_club_id = $1 AND id = ANY ($2::bigint[])', [clubId, memberIds]);
  const found = new Set(rows.map((r) => Number(r.id)));
  const v = new Violations();
  memberIds.forEach((id, i) => {
    if (!found.has(id)) v.add(['member_ids', i], 'does_not_exist');
  });
  v.throwIfAny();
}

/** Adds members (already present ones are left as they are). Returns the group (Hei's bulk extension). */
export async function addGroupMembers(db: Database, clubId: number, groupId: number, memberIds: number[]): Promise<MemberGroup> {
  await manualGroup(db, clubId, groupId);
  await checkMembersOfClub(db, clubId, memberIds);
  // Members of the club only, checked again inside the statement (a member deleted meanwhile is skipped).
  await db.query(
    `INSERT INTO member_group_memberships (group_id, member_id)
     SELECT $2, m.id FROM members m WHERE m.loyalty_club_id = $1 AND m.id = ANY ($3::bigint[])
     ON CONFLICT DO NOTHING`,
    [clubId, groupId, memberIds],
  );
  await touch(db, groupId);
  return findGroup(db, clubId, groupId);
}

export async function removeGroupMembers(db: Database, clubId: number, groupId: number, memberIds: number[]): Promise<MemberGroup> {
  await manualGroup(db, clubId, groupId);
  await db.query('DELETE FROM member_group_memberships WHERE group_id = $1 AND member_id = ANY ($2::bigint[])', [groupId, memberIds]);
  await touch(db, groupId);
  return findGroup(db, clubId, groupId);
}

/** MPC's add / remove of one member by path: 404 for an unknown group or member, `{}` otherwise. */
export async function setGroupMember(db: Database, clubId: number, groupId: number, memberId: number, member: boolean): Promise<void> {
  await manualGroup(db, clubId, groupId);
  const { rows } = await db.query('SELECT 1 FROM members WHERE loyalty_club_id = $1 AND id = $2', [clubId, memberId]);
  if (!rows[0]) throw notFound('Member');
  if (member) await db.query('INSERT INTO member_group_memberships (group_id, member_id) VALUES ($1, $2) ON CONFLICT DO NOTHING', [groupId, memberId]);
  else await db.query('DELETE FROM member_group_memberships WHERE group_id = $1 AND member_id = $2', [groupId, memberId]);
  await touch(db, groupId);
}

/** The group's member ids, a page of them; automatic groups are materialised first. */
export async function groupMemberIds(db: Queryable, clubId: number, groupId: number, page: number, perPage: number): Promise<{ ids: number[]; total: number }> {
  await getGroup(db, clubId, groupId);
  const { rows, total } = await selectPage<{ member_id: number }>(
    db, 'member_id', 'FROM member_group_memberships WHERE group_id = $1', `ORDER BY member_id ${limitOffset({ page_no: page, per_page: perPage })}`, [groupId],
  );
  return { ids: rows.map((r) => Number(r.member_id)), total };
}

/** The groups a member belongs to (automatic ones recomputed), a page of them. */
export async function groupsOfMember(db: Queryable, clubId: number, memberId: number, page: number, perPage: number): Promise<{ groups: MemberGroup[]; total: number }> {
  const { rows: automatic } = await db.query<{ id: number }>('SELECT id FROM member_groups WHERE loyalty_club_id = $1 AND automatic', [clubId]);
  await refreshAutomaticGroups(db, clubId, automatic.map((r) => Number(r.id)));
  const { rows, total } = await selectPage<any>(
    db, COLUMNS, 'FROM member_groups g JOIN member_group_memberships mm ON mm.group_id = g.id AND mm.member_id = $2 WHERE g.loyalty_club_id = $1',
    `ORDER BY g.id ${limitOffset({ page_no: page, per_page: perPage })}`, [clubId, memberId],
  );
  return { groups: rows.map(toGroup), total };
}
