// Member groups as MPC documents them: the `members_group` envelope and model, manual groups
// (members added / removed by path, or in bulk), automatic groups backed by an audience, the
// system group, types, a member's groups, filters, 405s and cycles.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp } from '../helpers.ts';
import { clubWithDemoSchema, ISO, stable } from './members-helpers.ts';

const ctx = await startTestApp();
const invalid = (details: unknown) => ({ error: 'Invalid parameters', details });

test('manual group lifecycle: envelope, model, add / remove one member by path, members as Members, delete answers the group', async () => {
  const c = await clubWithDemoSchema(ctx);
  const m1 = (await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'g1@example.com', first_name: 'G1' } } })).body;
  const m2 = (await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'g2@example.com', first_name: 'G2' } } })).body;

  const created = await c.request('POST', `${c.base}/members_groups`, { body: { members_group: { name: 'VIP', type: 'segment', description: 'Best customers' } } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const g = created.body.members_group;
  assert.match(g.created_at, ISO);
  assert.deepEqual({ ...g, id: 0, created_at: '', updated_at: '' }, {
    id: 0, name: 'VIP', type: 'segment', description: 'Best customers', automatic: false, system: false, audience_id: null, audience_conditions: null,
    members_count: 0, created_at: '', updated_at: '',
  });
  const dupName = await c.request('POST', `${c.base}/members_groups`, { body: { members_group: { name: 'vip' } } });
  assert.deepEqual([dupName.status, dupName.body], [422, invalid({ members_group: { name: [{ error: 'taken' }] } })]);
  const blank = await c.request('POST', `${c.base}/members_groups`, { body: { members_group: { name: '' } } });
  assert.deepEqual(blank.body.details, { members_group: { name: [{ error: 'blank' }] } });
  const unwrapped = await c.request('POST', `${c.base}/members_groups`, { body: { name: 'Flat' } });
  assert.deepEqual(unwrapped.body.details, { members_group: [{ error: 'blank' }], name: [{ error: 'not_permitted' }] });
  const system = await c.request('POST', `${c.base}/members_groups`, { body: { members_group: { name: 'Mine', system: true } } });
  assert.deepEqual(system.body.details, { members_group: { system: [{ error: 'inclusion', options: { in: [false] } }] } });

  for (const m of [m1, m2, m1]) {
    const r = await c.request('POST', `${c.base}/members_groups/${g.id}/members/${m.id}`);
    assert.deepEqual([r.status, r.body], [200, {}]);
  }
  assert.deepEqual((await c.request('POST', `${c.base}/members_groups/${g.id}/members/999999999`)).body, { error: 'Member not found' });
  assert.deepEqual((await c.request('POST', `${c.base}/members_groups/999999999/members/${m1.id}`)).body, { error: 'Members group not found' });
  const listed = await c.request('GET', `${c.base}/members_groups/${g.id}/members`);
  assert.equal(listed.status, 200);
  const m1Now = (await c.request('GET', `${c.base}/members/${m1.id}`)).body;
  assert.deepEqual(listed.body.members.map((m: any) => m.id), [m1.id, m2.id]);
  assert.deepEqual(listed.body.members[0], m1Now);
  assert.deepEqual([listed.body.pagination_info.total_count, listed.body.pagination_info.per_page], [2, 1000]);
  assert.deepEqual(m1Now.group_ids, [g.id]);
  stable(m1Now);

  const removed = await c.request('DELETE', `${c.base}/members_groups/${g.id}/members/${m1.id}`);
  assert.deepEqual([removed.status, removed.body], [200, {}]);
  const { rows } = await ctx.db.query('SELECT member_id FROM member_group_memberships WHERE group_id = $1', [g.id]);
  assert.deepEqual(rows.map((r) => Number(r.member_id)), [m2.id]);
  // Hei's bulk extension stays: member_ids in, the group out.
  const bulk = await c.request('POST', `${c.base}/members_groups/${g.id}/members`, { body: { member_ids: [m1.id, m2.id] } });
  assert.deepEqual([bulk.status, bulk.body.members_group.members_count], [200, 2]);
  const bulkOut = await c.request('DELETE', `${c.base}/members_groups/${g.id}/members?member_ids[]=${m1.id}`);
  assert.deepEqual([bulkOut.status, bulkOut.body.members_group.members_count], [200, 1]);

  const updated = await c.request('PUT', `${c.base}/members_groups/${g.id}`, { body: { members_group: { name: 'Gold', description: null } } });
  assert.deepEqual([updated.status, updated.body.members_group.name, updated.body.members_group.description, updated.body.members_group.type, updated.body.members_group.members_count], [200, 'Gold', null, 'segment', 1]);

  const shown = await c.request('GET', `${c.base}/members_groups/${g.id}`);
  assert.deepEqual(shown.body, { members_group: updated.body.members_group });
  const deleted = await c.request('DELETE', `${c.base}/members_groups/${g.id}`);
  assert.deepEqual([deleted.status, deleted.body], [200, { members_group: updated.body.members_group }]);
  assert.equal((await c.request('GET', `${c.base}/members_groups/${g.id}`)).status, 404);
  assert.equal((await ctx.db.query('SELECT count(*)::int AS n FROM member_group_memberships WHERE group_id = $1', [g.id])).rows[0].n, 0);
  assert.equal((await c.request('GET', `${c.base}/members/${m2.id}`)).status, 200);
});

test('system group "All members": one per club, counts everyone, cannot be changed (405)', async () => {
  const c = await clubWithDemoSchema(ctx);
  const list = (await c.request('GET', `${c.base}/members_groups?system=true`)).body;
  assert.equal(list.members_groups.length, 1);
  const all = list.members_groups[0];
  assert.deepEqual({ ...all, id: 0, created_at: '', updated_at: '' }, {
    id: 0, name: 'All members', type: 'system', description: 'Every member of the club', automatic: true, system: true, audience_id: null,
    audience_conditions: [], members_count: 0, created_at: '', updated_at: '',
  });
  const m = (await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'all@example.com', first_name: 'A' } } })).body;
  assert.equal((await c.request('GET', `${c.base}/members_groups/${all.id}`)).body.members_group.members_count, 1);
  for (const [method, path, body] of [
    ['PUT', `/members_groups/${all.id}`, { members_group: { name: 'Renamed' } }],
    ['DELETE', `/members_groups/${all.id}`, undefined],
    ['POST', `/members_groups/${all.id}/members/${m.id}`, undefined],
    ['DELETE', `/members_groups/${all.id}/members/${m.id}`, undefined],
    ['POST', `/members_groups/${all.id}/members`, { member_ids: [m.id] }],
  ] as const) {
    const r = await c.request(method, `${c.base}${path}`, { body });
    assert.equal(r.status, 405, `${method} ${path}: ${JSON.stringify(r.body)}`);
    assert.equal(typeof r.body.error, 'string');
  }
  const types = await c.request('GET', `${c.base}/members_groups/types`);
  assert.deepEqual([types.status, types.body], [200, { members_group_types: [{ name: 'system', system: true }] }]);
});

test('automatic groups: from audience_conditions or a stored audience; show and sendings recompute, the list shows the stored count; cycles refused', async () => {
  const c = await clubWithDemoSchema(ctx);
  const oslo = (await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'o1@example.com', first_name: 'Oslo' } } })).body;
  await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'b1@example.com', first_name: 'Bergen' } } });
  const conditions = [{ condition_group: 'member_properties', field: 'first_name', operator: 'match', value: 'Oslo' }];
  const auto = await c.request('POST', `${c.base}/members_groups`, { body: { members_group: { name: 'Oslo people', type: 'city', audience_conditions: conditions } } });
  assert.equal(auto.status, 201, JSON.stringify(auto.body));
  const g = auto.body.members_group;
  assert.deepEqual([g.automatic, g.audience_id, g.audience_conditions, g.members_count], [true, null, conditions, 1]);
  assert.deepEqual((await c.request('GET', `${c.base}/members_groups/${g.id}/members`)).body.members.map((m: any) => m.id), [oslo.id]);

  // Members of automatic groups come from the audience only.
  const add = await c.request('POST', `${c.base}/members_groups/${g.id}/members/${oslo.id}`);
  assert.equal(add.status, 405);

  const later = (await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'o2@example.com', first_name: 'Oslo' } } })).body;
  const listed = (await c.request('GET', `${c.base}/members_groups?automatic=true&system=false`)).body.members_groups;
  assert.deepEqual(listed.map((x: any) => [x.id, x.members_count]), [[g.id, 1]], 'the list shows the stored count');
  assert.equal((await c.request('GET', `${c.base}/members_groups/${g.id}`)).body.members_group.members_count, 2, 'show recomputes');
  const groupsOfLater = await c.request('GET', `${c.base}/members/by_email/o2%40example.com/groups`);
  assert.deepEqual(groupsOfLater.body.members_groups.map((x: any) => x.name).sort(), ['All members', 'Oslo people']);
  assert.equal(groupsOfLater.body.pagination_info.total_count, 2);
  assert.deepEqual((await c.request('GET', `${c.base}/members/${later.id}/groups`)).body, groupsOfLater.body);

  // A stored audience behind a group.
  const audience = (await c.request('POST', '/v1/audiences', { slug: c.club.slug, body: { audience: { name: 'Bergen', conditions: [{ condition_group: 'member_properties', field: 'first_name', operator: 'match', value: 'Bergen' }] } } })).body.audience;
  const stored = (await c.request('POST', `${c.base}/members_groups`, { body: { members_group: { name: 'Bergen people', audience_id: audience.id } } })).body.members_group;
  assert.deepEqual([stored.automatic, stored.audience_id, stored.audience_conditions, stored.members_count], [true, audience.id, audience.conditions, 1]);

  // Bad payloads.
  const cases: Array<[unknown, unknown]> = [
    [{ name: 'x1', audience_id: 999999999 }, { audience_id: [{ error: 'referenced_audience_must_exist' }] }],
    [{ name: 'x2', audience_id: audience.id, audience_conditions: conditions }, { audience_conditions: [{ error: 'attribute_cannot_be_present_with', options: { with: 'audience_id' } }] }],
    [{ name: 'x3', audience_conditions: [{ condition_group: 'member_properties', field: 'shoe_size', operator: 'match', value: 1 }] }, null],
    [{ name: 'x4', audience_conditions: [{ condition_group: 'groups', field: 'members_group_ids', operator: 'any', value: [999999999] }] }, { audience_conditions: { '0': { value: { '0': [{ error: 'does_not_exist' }] } } } }],
  ];
  for (const [body, details] of cases) {
    const r = await c.request('POST', `${c.base}/members_groups`, { body: { members_group: body } });
    assert.equal(r.status, 422, JSON.stringify(body));
    if (details) assert.deepEqual(r.body.details, { members_group: details }, JSON.stringify(body));
    else assert.ok(r.body.details.members_group.audience_conditions, JSON.stringify(r.body));
  }

  // A refers to B, B refers to A: refused.
  const refersTo = (id: number) => [{ condition_group: 'groups', field: 'members_group_ids', operator: 'any', value: [id] }];
  const a = (await c.request('POST', `${c.base}/members_groups`, { body: { members_group: { name: 'A', audience_conditions: refersTo(g.id) } } })).body.members_group;
  assert.equal(a.members_count, 2, 'a group of a group');
  const b = (await c.request('POST', `${c.base}/members_groups`, { body: { members_group: { name: 'B', audience_conditions: refersTo(a.id) } } })).body.members_group;
  const cycle = await c.request('PUT', `${c.base}/members_groups/${a.id}`, { body: { members_group: { audience_conditions: refersTo(b.id) } } });
  assert.deepEqual([cycle.status, cycle.body], [422, invalid({ members_group: { audience_conditions: [{ error: 'cyclic_group_reference' }] } })]);
  const self = await c.request('PUT', `${c.base}/members_groups/${a.id}`, { body: { members_group: { audience_conditions: refersTo(a.id) } } });
  assert.equal(self.status, 422);

  // Filters and types.
  const q = async (query: string) => (await c.request('GET', `${c.base}/members_groups?${query}`)).body.members_groups.map((x: any) => x.name);
  assert.deepEqual(await q('type=city'), ['Oslo people']);
  assert.deepEqual(await q('name=bergen%20PEOPLE'), ['Bergen people']);
  assert.deepEqual(await q('search=peop&sort_by=name'), ['Bergen people', 'Oslo people']);
  assert.deepEqual(await q('automatic=false'), []);
  assert.deepEqual((await c.request('GET', `${c.base}/members_groups/types`)).body.members_group_types, [{ name: 'city', system: false }, { name: 'system', system: true }]);
  assert.equal((await c.request('GET', `${c.base}/members_groups?colour=red`)).status, 422);
});

test('a sending to an automatic group reaches the members its audience selects now', async () => {
  const c = await clubWithDemoSchema(ctx);
  const g = (await c.request('POST', `${c.base}/members_groups`, {
    body: { members_group: { name: 'Kids', audience_conditions: [{ condition_group: 'member_properties', field: 'interests', operator: 'contains', value: 'kids' }] } },
  })).body.members_group;
  const m = (await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'k@example.com', first_name: 'K', interests: ['kids'] } } })).body;
  // No show since the member joined: the audience resolution of the messaging side recomputes the group.
  const { resolveAudience } = await import('../../src/members/audiences.ts');
  const resolved = await resolveAudience(ctx.db, c.club.id, { type: 'inline', conditions: [{ condition_group: 'groups', field: 'members_group_ids', operator: 'any', value: [g.id] }] }, { firstParam: 2 });
  const { rows } = await ctx.db.query(`SELECT m.id FROM members m WHERE m.loyalty_club_id = $1 AND (${resolved!.sql})`, [c.club.id, ...resolved!.params]);
  assert.deepEqual(rows.map((r) => Number(r.id)), [m.id]);
});

test("groups are per club: another club's group is 404", async () => {
  const a = await clubWithDemoSchema(ctx);
  const b = await clubWithDemoSchema(ctx);
  const g = (await b.request('POST', `${b.base}/members_groups`, { body: { members_group: { name: 'B only' } } })).body.members_group;
  for (const [method, path, body] of [
    ['GET', `/members_groups/${g.id}`, undefined],
    ['PUT', `/members_groups/${g.id}`, { members_group: { name: 'x' } }],
    ['DELETE', `/members_groups/${g.id}`, undefined],
    ['GET', `/members_groups/${g.id}/members`, undefined],
    ['POST', `/members_groups/${g.id}/members`, { member_ids: [1] }],
    ['POST', `/members_groups/${g.id}/members/1`, undefined],
  ] as const) {
    const r = await a.request(method, `${a.base}${path}`, { body });
    assert.deepEqual([r.status, r.body], [404, { error: 'Members group not found' }], `${method} ${path}`);
  }
  assert.deepEqual((await a.request('GET', `${a.base}/members_groups?system=false`)).body.members_groups, []);
});
