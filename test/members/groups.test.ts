// Member groups: list / create / show / update / delete, adding and removing members.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp } from '../helpers.ts';
import { clubWithDemoSchema, ISO } from './members-helpers.ts';

const ctx = await startTestApp();

test('group lifecycle with members; group_ids on the member; deleting the group leaves members', async () => {
  const c = await clubWithDemoSchema(ctx);
  const m1 = (await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'g1@example.com', first_name: 'G1' } } })).body;
  const m2 = (await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'g2@example.com', first_name: 'G2' } } })).body;

  const created = await c.request('POST', `${c.base}/members_groups`, { body: { name: 'VIP', description: 'Best customers' } });
  assert.equal(created.status, 201);
  const g = created.body;
  assert.match(g.created_at, ISO);
  assert.deepEqual({ ...g, id: 0, created_at: '', updated_at: '' }, { id: 0, name: 'VIP', description: 'Best customers', members_count: 0, created_at: '', updated_at: '' });
  const dupName = await c.request('POST', `${c.base}/members_groups`, { body: { name: 'vip' } });
  assert.deepEqual([dupName.status, dupName.body], [422, { error: 'Invalid parameters', details: { name: [{ error: 'taken' }] } }]);
  const blank = await c.request('POST', `${c.base}/members_groups`, { body: { name: '' } });
  assert.deepEqual(blank.body.details, { name: [{ error: 'blank' }] });

  const added = await c.request('POST', `${c.base}/members_groups/${g.id}/members`, { body: { member_ids: [m1.id, m2.id, m1.id] } });
  assert.equal(added.status, 200);
  assert.equal(added.body.members_count, 2);
  const again = await c.request('POST', `${c.base}/members_groups/${g.id}/members`, { body: { member_ids: [m1.id] } });
  assert.equal(again.body.members_count, 2);
  const unknown = await c.request('POST', `${c.base}/members_groups/${g.id}/members`, { body: { member_ids: [m1.id, 999999999] } });
  assert.deepEqual([unknown.status, unknown.body], [422, { error: 'Invalid parameters', details: { member_ids: { '1': [{ error: 'does_not_exist' }] } } }]);

  const listed = await c.request('GET', `${c.base}/members_groups/${g.id}/members`);
  assert.deepEqual(listed.body.member_ids, [m1.id, m2.id]);
  assert.equal(listed.body.pagination_info.total_count, 2);
  assert.deepEqual((await c.request('GET', `${c.base}/members/${m1.id}`)).body.group_ids, [g.id]);

  const removed = await c.request('DELETE', `${c.base}/members_groups/${g.id}/members?member_ids[]=${m1.id}`);
  assert.deepEqual([removed.status, removed.body.members_count], [200, 1]);
  const { rows } = await ctx.db.query('SELECT member_id FROM member_group_memberships WHERE group_id = $1', [g.id]);
  assert.deepEqual(rows.map((r) => Number(r.member_id)), [m2.id]);

  const updated = await c.request('PUT', `${c.base}/members_groups/${g.id}`, { body: { name: 'Gold', description: null } });
  assert.deepEqual([updated.status, updated.body.name, updated.body.description, updated.body.members_count], [200, 'Gold', null, 1]);

  const second = (await c.request('POST', `${c.base}/members_groups`, { body: { name: 'Newsletter' } })).body;
  const list = await c.request('GET', `${c.base}/members_groups?sort_by=name`);
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.members_groups.map((x: any) => x.name), ['Gold', 'Newsletter']);
  assert.equal(list.body.pagination_info.total_count, 2);
  assert.deepEqual((await c.request('GET', `${c.base}/members_groups?ids[]=${second.id}`)).body.members_groups.map((x: any) => x.id), [second.id]);

  assert.equal((await c.request('DELETE', `${c.base}/members_groups/${g.id}`)).status, 204);
  assert.equal((await c.request('GET', `${c.base}/members_groups/${g.id}`)).status, 404);
  assert.equal((await ctx.db.query('SELECT count(*)::int AS n FROM member_group_memberships WHERE group_id = $1', [g.id])).rows[0].n, 0);
  assert.equal((await c.request('GET', `${c.base}/members/${m2.id}`)).status, 200);
});

test("groups are per club: another club's group is 404", async () => {
  const a = await clubWithDemoSchema(ctx);
  const b = await clubWithDemoSchema(ctx);
  const g = (await b.request('POST', `${b.base}/members_groups`, { body: { name: 'B only' } })).body;
  for (const [method, path, body] of [
    ['GET', `/members_groups/${g.id}`, undefined],
    ['PUT', `/members_groups/${g.id}`, { name: 'x' }],
    ['DELETE', `/members_groups/${g.id}`, undefined],
    ['POST', `/members_groups/${g.id}/members`, { member_ids: [1] }],
  ] as const) {
    const r = await a.request(method, `${a.base}${path}`, { body });
    assert.deepEqual([r.status, r.body], [404, { error: 'Members group not found' }], `${method} ${path}`);
  }
  assert.deepEqual((await a.request('GET', `${a.base}/members_groups`)).body.members_groups, []);
});
