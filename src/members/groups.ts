// Member groups (members-api §5.4): named static sets of members of one club.
import type { Database, Queryable } from '../db/connection.ts';
import { notFound, Violations } from '../platform/errors.ts';
import { limitOffset, selectPage } from '../platform/pagination.ts';

export interface MemberGroup {
  id: number;
  name: string;
  description: string | null;
  members_count: number;
  created_at: string;
  updated_at: string;
}

const COLUMNS = `g.id, g.name, g.description, g.created_at, g.updated_at,
  (SELECT count(*) FROM member_group_memberships mm WHERE mm.group_id = g.id)::int AS members_count`;

const toGroup = (r: Record<string, any>): MemberGroup => ({
  id: r.id,
  name: r.name,
  description: r.description,
  members_count: r.members_count,
  created_at: new Date(r.created_at).toISOString(),
  updated_at: new Date(r.updated_at).toISOString(),
});

export const GROUP_SORT: Record<string, string> = { id: 'g.id', name: 'g.name', created_at: 'g.created_at', updated_at: 'g.updated_at' };

export async function listGroups(db: Queryable, clubId: number, q: { page_no: number; per_page: number; orderBy: string; ids?: number[] }): Promise<{ groups: MemberGroup[]; total: number }> {
  const params: unknown[] = [clubId];
  let where = 'g.loyalty_club_id = $1';
  if (q.ids?.length) {
    params.push(q.ids);
    where += ' AND g.id = ANY ($2::bigint[])';
  }
  const { rows, total } = await selectPage<any>(db, COLUMNS, `FROM member_groups g WHERE ${where}`, `${q.orderBy} ${limitOffset(q)}`, params);
  return { groups: rows.map(toGroup), total };
}

export async function getGroup(db: Queryable, clubId: number, id: number): Promise<MemberGroup> {
  const { rows } = await db.query(`SELECT ${COLUMNS} FROM member_groups g WHERE g.loyalty_club_id = $1 AND g.id = $2`, [clubId, id]);
  if (!rows[0]) throw notFound('Members group');
  return toGroup(rows[0]);
}

async function nameTaken(db: Queryable, clubId: number, name: string, exceptId: number | null): Promise<boolean> {
  const { rows } = await db.query('SELECT 1 FROM member_groups WHERE loyalty_club_id = $1 AND lower(name) = lower($2) AND id IS DISTINCT FROM $3', [clubId, name, exceptId]);
  return rows.length > 0;
}

export async function createGroup(db: Queryable, clubId: number, input: { name: string; description?: string | null }): Promise<MemberGroup> {
  const v = new Violations();
  if (await nameTaken(db, clubId, input.name, null)) v.add(['name'], 'taken');
  v.throwIfAny();
  const { rows } = await db.query<{ id: number }>('INSERT INTO member_groups (loyalty_club_id, name, description) VALUES ($1, $2, $3) RETURNING id', [
    clubId, input.name, input.description ?? null,
  ]);
  return getGroup(db, clubId, rows[0].id);
}

export async function updateGroup(db: Queryable, clubId: number, id: number, input: { name?: string; description?: string | null }): Promise<MemberGroup> {
  const current = await getGroup(db, clubId, id);
  const v = new Violations();
  if (input.name !== undefined && (await nameTaken(db, clubId, input.name, id))) v.add(['name'], 'taken');
  v.throwIfAny();
  await db.query('UPDATE member_groups SET name = $3, description = $4, updated_at = now() WHERE loyalty_club_id = $1 AND id = $2', [
    clubId, id, input.name ?? current.name, input.description === undefined ? current.description : input.description,
  ]);
  return getGroup(db, clubId, id);
}

/** Deletes the group; its membership rows go with it (ON DELETE CASCADE). */
export async function deleteGroup(db: Queryable, clubId: number, id: number): Promise<void> {
  const r = await db.query('DELETE FROM member_groups WHERE loyalty_club_id = $1 AND id = $2', [clubId, id]);
  if (r.rowCount !== 1) throw notFound('Members group');
}

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

/** Adds members (already present ones are left as they are). Returns the group. */
export async function addGroupMembers(db: Database, clubId: number, groupId: number, memberIds: number[]): Promise<MemberGroup> {
  await getGroup(db, clubId, groupId);
  await checkMembersOfClub(db, clubId, memberIds);
  // Members of the club only, checked again inside the statement (a member deleted meanwhile is skipped).
  await db.query(
    `INSERT INTO member_group_memberships (group_id, member_id)
     SELECT $2, m.id FROM members m WHERE m.loyalty_club_id = $1 AND m.id = ANY ($3::bigint[])
     ON CONFLICT DO NOTHING`,
    [clubId, groupId, memberIds],
  );
  await db.query('UPDATE member_groups SET updated_at = now() WHERE id = $1', [groupId]);
  return getGroup(db, clubId, groupId);
}

export async function removeGroupMembers(db: Database, clubId: number, groupId: number, memberIds: number[]): Promise<MemberGroup> {
  await getGroup(db, clubId, groupId);
  await db.query('DELETE FROM member_group_memberships WHERE group_id = $1 AND member_id = ANY ($2::bigint[])', [groupId, memberIds]);
  await db.query('UPDATE member_groups SET updated_at = now() WHERE id = $1', [groupId]);
  return getGroup(db, clubId, groupId);
}

export async function listGroupMemberIds(db: Queryable, clubId: number, groupId: number, page: number, perPage: number): Promise<{ ids: number[]; total: number }> {
  await getGroup(db, clubId, groupId);
  const { rows, total } = await selectPage<{ member_id: number }>(
    db, 'member_id', 'FROM member_group_memberships WHERE group_id = $1', `ORDER BY member_id ${limitOffset({ page_no: page, per_page: perPage })}`, [groupId],
  );
  return { ids: rows.map((r) => Number(r.member_id)), total };
}
