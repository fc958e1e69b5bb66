// Member management endpoints: create / show / update / delete, lookups, push tokens, list
// filters, permits and cross-club isolation — through real HTTP, checked against the rows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp } from '../helpers.ts';
import { clubWithDemoSchema, DEFAULTS, ISO, stable } from './members-helpers.ts';

const ctx = await startTestApp();

test('create a member: normalised identifiers, default language, consents, statuses, opt-in channel', async () => {
  const c = await clubWithDemoSchema(ctx);
  const res = await c.request('POST', `${c.base}/members`, {
    headers: { 'X-Subproduct-Name': 'spring-campaign' },
    body: {
      properties: { email: '  Ola.Nordmann@Example.COM ', msisdn: '+47 407 69 126', first_name: 'Ola', interests: ['fashion'] },
      consents: { sms_marketing: true, email_marketing: { status: false } },
      email_enabled: false,
      favorite_stores: [3, 3, 7],
      password: 'secret-pass',
      person_id: 99,
    },
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  assert.match(res.body.created_at, ISO);
  assert.match(res.body.consents.sms_marketing.updated_at, ISO);
  assert.deepEqual(stable(res.body), {
    ...DEFAULTS,
    properties: { email: 'ola.nordmann@example.com', msisdn: '4740769126', first_name: 'Ola', interests: ['fashion'], language: 'en' },
    consents: { sms_marketing: { status: true }, email_marketing: { status: false } },
    email_status: 'disabled',
    optin_subchannel: 'spring-campaign',
    has_password: true,
    favorite_stores: [3, 7],
  });
  const { rows } = await ctx.db.query('SELECT email, msisdn, password_hash, loyalty_club_id FROM members WHERE id = $1', [res.body.id]);
  assert.equal(rows[0].email, 'ola.nordmann@example.com');
  assert.equal(rows[0].msisdn, '4740769126');
  assert.match(rows[0].password_hash, /^scrypt\$/);
  assert.equal(Number(rows[0].loyalty_club_id), c.club.id);
  // person_id is the server's: the 99 of the payload is ignored, and it never changes on update.
  assert.notEqual(res.body.person_id, 99);
  const again = await c.request('PUT', `${c.base}/members/${res.body.id}`, { body: { person_id: 5 } });
  assert.deepEqual([again.status, again.body.person_id], [200, res.body.person_id]);

  const shown = await c.request('GET', `${c.base}/members/${res.body.id}`);
  assert.equal(shown.status, 200);
  assert.deepEqual(shown.body, res.body);
});

test('lookup by msisdn (any written form) and by e-mail (any case); unknown → 404', async () => {
  const c = await clubWithDemoSchema(ctx);
  const created = await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'kari@example.com', msisdn: '4740000002', first_name: 'Kari' } } });
  for (const path of ['by_msisdn/4740000002', 'by_msisdn/%2B4740000002', 'by_msisdn/004740000002', 'by_email/KARI%40example.com']) {
    const r = await c.request('GET', `${c.base}/members/${path}`);
    assert.equal(r.status, 200, path);
    assert.deepEqual(r.body, created.body);
  }
  for (const path of ['by_msisdn/4740000003', 'by_email/nobody%40example.com']) {
    const r = await c.request('GET', `${c.base}/members/${path}`);
    assert.deepEqual([r.status, r.body], [404, { error: 'Member not found' }], path);
  }
  // Something that is no MSISDN at all is a bad parameter, not a missing member.
  for (const path of ['by_msisdn/abc', 'by_msisdn/abc/groups']) {
    const r = await c.request('GET', `${c.base}/members/${path}`);
    assert.deepEqual([r.status, r.body], [422, { error: 'Invalid parameters', details: { msisdn: [{ error: 'invalid_msisdn' }] } }], path);
  }
});

test('update merges properties, null removes one, consents keep their time when unchanged, statuses follow switches', async () => {
  const c = await clubWithDemoSchema(ctx);
  const created = (await c.request('POST', `${c.base}/members`, {
    body: { properties: { email: 'a@example.com', msisdn: '4740000011', first_name: 'A', gender: 'man' }, consents: { sms_marketing: true, email_marketing: true } },
  })).body;
  await ctx.db.query(`UPDATE members SET sms_status = 'verified' WHERE id = $1`, [created.id]);
  const res = await c.request('PUT', `${c.base}/members/${created.id}`, {
    body: { properties: { last_name: 'B', gender: null }, consents: { sms_marketing: true, email_marketing: false }, push_enabled: false, banned_until: '2030-01-01T00:00:00Z' },
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.deepEqual(res.body.properties, { email: 'a@example.com', msisdn: '4740000011', first_name: 'A', last_name: 'B', language: 'en' });
  assert.equal(res.body.consents.sms_marketing.updated_at, created.consents.sms_marketing.updated_at);
  assert.notEqual(res.body.consents.email_marketing.updated_at, created.consents.email_marketing.updated_at);
  assert.equal(res.body.consents.email_marketing.status, false);
  assert.deepEqual([res.body.sms_status, res.body.email_status, res.body.push_status], ['verified', 'enabled', 'disabled']);
  assert.equal(res.body.banned_until, '2030-01-01T00:00:00.000Z');
  assert.ok(res.body.updated_at > created.updated_at);

  // A new number is not verified any more.
  const moved = await c.request('PUT', `${c.base}/members/${created.id}`, { body: { properties: { msisdn: '4740000012' }, push_enabled: true } });
  assert.deepEqual([moved.body.sms_status, moved.body.push_status], ['enabled', 'enabled']);

  // Nothing changes → same representation, same updated_at.
  const same = await c.request('PUT', `${c.base}/members/${created.id}`, { body: { properties: { first_name: 'A' } } });
  assert.deepEqual(same.body, moved.body);

  const missing = await c.request('PUT', `${c.base}/members/999999999`, { body: { properties: {} } });
  assert.deepEqual([missing.status, missing.body], [404, { error: 'Member not found' }]);
});

test('identifiers are unique per club: taken on create and on update, free in another club', async () => {
  const c = await clubWithDemoSchema(ctx);
  const other = await clubWithDemoSchema(ctx);
  const body = { properties: { email: 'dup@example.com', msisdn: '4740000021', first_name: 'D' } };
  assert.equal((await c.request('POST', `${c.base}/members`, { body })).status, 201);
  const dup = await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'DUP@example.com', msisdn: '+4740000021', first_name: 'E' } } });
  assert.deepEqual([dup.status, dup.body], [422, { error: 'Invalid parameters', details: { properties: { email: [{ error: 'taken' }], msisdn: [{ error: 'taken' }] } } }]);
  assert.equal((await other.request('POST', `${other.base}/members`, { body })).status, 201);
  const second = await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'second@example.com', first_name: 'S' } } });
  const clash = await c.request('PUT', `${c.base}/members/${second.body.id}`, { body: { properties: { email: 'dup@example.com' } } });
  assert.deepEqual([clash.status, clash.body], [422, { error: 'Invalid parameters', details: { properties: { email: [{ error: 'taken' }] } } }]);
  const { rows } = await ctx.db.query('SELECT count(*)::int AS n FROM members WHERE loyalty_club_id = $1', [c.club.id]);
  assert.equal(rows[0].n, 2);
});

test('delete removes the member, its group rows and push tokens; a second delete is 404', async () => {
  const c = await clubWithDemoSchema(ctx);
  const m = (await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'gone@example.com', first_name: 'G' } } })).body;
  const g = (await c.request('POST', `${c.base}/members_groups`, { body: { members_group: { name: 'VIP' } } })).body.members_group;
  assert.equal((await c.request('POST', `${c.base}/members_groups/${g.id}/members/${m.id}`)).status, 200);
  assert.equal((await c.request('POST', `${c.base}/members/${m.id}/push_tokens`, { body: { token: 'fcm-token-1', platform: 'fcm' } })).status, 201);
  const before = (await c.request('GET', `${c.base}/members/${m.id}`)).body;
  const del = await c.request('DELETE', `${c.base}/members/${m.id}?send_email_unsubscribe_message=false`);
  // MPC answers the destroyed member.
  assert.deepEqual([del.status, del.body], [200, before]);
  for (const [sql, label] of [
    ['SELECT count(*)::int AS n FROM members WHERE id = $1', 'member'],
    ['SELECT count(*)::int AS n FROM member_group_memberships WHERE member_id = $1', 'group rows'],
    ['SELECT count(*)::int AS n FROM member_push_tokens WHERE member_id = $1', 'push tokens'],
  ]) assert.equal((await ctx.db.query(sql, [m.id])).rows[0].n, 0, label);
  assert.equal((await c.request('GET', `${c.base}/members_groups/${g.id}`)).body.members_group.members_count, 0);
  assert.deepEqual((await c.request('DELETE', `${c.base}/members/${m.id}`)).status, 404);
});

test('push tokens: register (idempotent), list, has_push_token, delete', async () => {
  const c = await clubWithDemoSchema(ctx);
  const m = (await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'push@example.com', first_name: 'P' } } })).body;
  const first = await c.request('POST', `${c.base}/members/${m.id}/push_tokens`, { body: { token: 'tok-A', platform: 'webpush' } });
  assert.equal(first.status, 201);
  assert.deepEqual({ ...first.body, id: 0, created_at: '' }, { id: 0, token: 'tok-A', platform: 'webpush', created_at: '' });
  const again = await c.request('POST', `${c.base}/members/${m.id}/push_tokens`, { body: { token: 'tok-A', platform: 'webpush' } });
  assert.deepEqual([again.status, again.body], [200, first.body]);
  const bad = await c.request('POST', `${c.base}/members/${m.id}/push_tokens`, { body: { token: '', platform: 'apns' } });
  assert.deepEqual([bad.status, bad.body.details], [422, { token: [{ error: 'blank' }], platform: [{ error: 'inclusion', options: { in: ['fcm', 'webpush'] } }] }]);
  assert.equal((await c.request('GET', `${c.base}/members/${m.id}`)).body.has_push_token, true);
  assert.deepEqual((await c.request('GET', `${c.base}/members/${m.id}/push_tokens`)).body, { push_tokens: [first.body] });
  assert.equal((await c.request('DELETE', `${c.base}/members/${m.id}/push_tokens/${first.body.id}`)).status, 204);
  assert.equal((await c.request('GET', `${c.base}/members/${m.id}`)).body.has_push_token, false);
  assert.equal((await c.request('DELETE', `${c.base}/members/${m.id}/push_tokens/${first.body.id}`)).status, 404);
});

test('list: every filter, sorting, pagination, per_page limit', async () => {
  const c = await clubWithDemoSchema(ctx);
  const make = async (p: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
    (await c.request('POST', `${c.base}/members`, { body: { properties: p, ...extra } })).body.id as number;
  const ola = await make({ email: 'ola@example.com', msisdn: '4740000101', first_name: 'Ola', last_name: 'Nordmann', gender: 'man', language: 'no', interests: ['fashion', 'kids'], child_birth_years: [2010] }, { favorite_stores: [1, 2] });
  const kari = await make({ email: 'kari@example.com', msisdn: '4740000102', first_name: 'Kari', last_name: 'Nordmann', gender: 'woman', language: 'en', interests: ['kids'] }, { favorite_stores: [2] });
  const emma = await make({ email: 'emma@example.com', msisdn: '4790000103', first_name: 'Emma', last_name: 'Hansen', gender: 'woman', language: 'no' }, { favorite_stores: [5] });
  const ids = async (query: string) => {
    const r = await c.request('GET', `${c.base}/members${query}`);
    assert.equal(r.status, 200, `${query}: ${JSON.stringify(r.body)}`);
    return r.body.members.map((m: any) => m.id);
  };
  assert.deepEqual(await ids(''), [ola, kari, emma]);
  assert.deepEqual(await ids(`?ids[]=${ola}&ids[]=${emma}`), [ola, emma]);
  assert.deepEqual(await ids('?properties[gender]=woman'), [kari, emma]);
  assert.deepEqual(await ids('?properties[gender]=woman&properties[language][]=no&properties[language][]=pl'), [emma]);
  assert.deepEqual(await ids('?properties[language][]=en&properties[language][]=no'), [ola, kari, emma]);
  assert.deepEqual(await ids('?properties[interests]=kids'), [ola, kari]);
  assert.deepEqual(await ids('?properties[child_birth_years]=2010'), [ola]);
  assert.deepEqual(await ids('?properties[msisdn]=%2B4740000102'), [kari]);
  assert.deepEqual(await ids('?properties[email]=EMMA@example.com'), [emma]);
  assert.deepEqual(await ids('?store_ids[]=2'), [ola, kari]);
  assert.deepEqual(await ids('?store_ids[]=5&store_ids[]=1'), [ola, emma]);
  assert.deepEqual(await ids('?search=nordmann'), [ola, kari]);
  assert.deepEqual(await ids('?search=kari%20nord'), [kari]);
  assert.deepEqual(await ids('?search=4790'), [emma]);
  assert.deepEqual(await ids('?search=%25'), []);
  assert.deepEqual(await ids('?sort_by[]=properties.first_name'), [emma, kari, ola]);
  assert.deepEqual(await ids('?sort_by[]=properties.last_name&sort_by[]=properties.first_name&sort_directions[]=desc&sort_directions[]=asc'), [kari, ola, emma]);
  assert.deepEqual(await ids('?sort_by[]=id&sort_directions[]=desc'), [emma, kari, ola]);
  // Beyond the last page, sorted by a property: the total is still counted (once a 500).
  const beyond = await c.request('GET', `${c.base}/members?sort_by[]=properties.first_name&page_no=5`);
  assert.deepEqual([beyond.status, beyond.body.members, beyond.body.pagination_info.total_count, beyond.body.pagination_info.is_out_of_range], [200, [], 3, true]);

  const page = await c.request('GET', `${c.base}/members?per_page=2&page_no=2`);
  assert.deepEqual(page.body.members.map((m: any) => m.id), [emma]);
  assert.deepEqual(page.body.pagination_info, {
    total_count: 3, per_page: 2, total_pages: 2, current_page: 2, next_page: null, prev_page: 1, is_first_page: false, is_last_page: true, is_out_of_range: false,
  });
  const defaults = await c.request('GET', `${c.base}/members?ids[]=${kari}`);
  assert.equal(defaults.body.pagination_info.per_page, 1000);

  const errors: Array<[string, unknown]> = [
    ['?per_page=1001', { per_page: [{ error: 'less_or_equal_to', options: { number: 1000 } }] }],
    ['?properties[shoe_size]=42', { properties: { shoe_size: [{ error: 'not_permitted' }] } }],
    ['?properties[child_birth_years]=abc', { properties: { child_birth_years: [{ error: 'not_an_integer' }] } }],
    ['?properties[msisdn]=12', { properties: { msisdn: [{ error: 'invalid_msisdn' }] } }],
    ['?sort_by[]=password_hash', { sort_by: { '0': [{ error: 'inclusion', options: { in: ['id', 'created_at', 'updated_at', 'email', 'msisdn', 'properties.birthday', 'properties.child_birth_years', 'properties.email', 'properties.first_name', 'properties.gender', 'properties.interests', 'properties.language', 'properties.last_name', 'properties.msisdn', 'properties.postal_code'] } }] } }],
    ['?sort_directions[]=up', { sort_directions: { '0': [{ error: 'inclusion', options: { in: ['asc', 'desc'] } }] } }],
    ['?ids[]=x', { ids: { '0': [{ error: 'not_an_integer' }] } }],
    ['?colour=red', { colour: [{ error: 'not_permitted' }] }],
    ['?ids[]=99999999999999999999', { ids: { '0': [{ error: 'less_or_equal_to', options: { number: Number.MAX_SAFE_INTEGER } }] } }],
    ['?page_no=1000000000', { page_no: [{ error: 'less_or_equal_to', options: { number: 10_000_000 } }] }],
    ['?properties[child_birth_years]=1e400', { properties: { child_birth_years: [{ error: 'not_an_integer' }] } }],
  ];
  for (const [query, details] of errors) {
    const r = await c.request('GET', `${c.base}/members${query}`);
    assert.deepEqual([r.status, r.body], [422, { error: 'Invalid parameters', details }], query);
  }
  const hugeId = await c.request('GET', `${c.base}/members/99999999999999999999`);
  assert.deepEqual([hugeId.status, hugeId.body], [404, { error: 'Not found' }]);
  const hugeStore = await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'big@example.com', first_name: 'B' }, favorite_stores: [1e20] } });
  assert.deepEqual([hugeStore.status, hugeStore.body.details], [422, { favorite_stores: { '0': [{ error: 'less_or_equal_to', options: { number: Number.MAX_SAFE_INTEGER } }] } }]);
});

test('permits: each endpoint needs its own permit (403 without it)', async () => {
  const c = await clubWithDemoSchema(ctx);
  const m = (await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'perm@example.com', first_name: 'P' } } })).body;
  const readOnly = await c.tokenWith(['BL:Api:Members:Index', 'BL:Api:Members:Show']);
  assert.equal((await c.request('GET', `${c.base}/members`, { token: readOnly })).status, 200);
  assert.equal((await c.request('GET', `${c.base}/members/${m.id}`, { token: readOnly })).status, 200);
  const cases: Array<[string, string, unknown, string]> = [
    ['POST', '/members', { properties: { email: 'x@example.com', first_name: 'X' } }, 'BL:Api:Members:Create'],
    ['PUT', `/members/${m.id}`, { properties: {} }, 'BL:Api:Members:Update'],
    ['DELETE', `/members/${m.id}`, undefined, 'BL:Api:Members:Destroy'],
    ['GET', '/schema', undefined, 'BL:Api:Schema:Get'],
    ['GET', '/member_schema', undefined, 'BL:Api:Schema:Get'],
    ['GET', '/members_groups/1', undefined, 'BL:Api:MembersGroups:Get'],
    ['GET', `/members/${m.id}/groups`, undefined, 'BL:Api:Members:Groups'],
    ['GET', '/members/imports/x', undefined, 'BL:Api:Members:Imports:Get'],
    ['POST', '/members/imports', { members: [{}] }, 'BL:Api:Members:Imports:Create'],
    ['GET', '/members_groups', undefined, 'BL:Api:MembersGroups:Index'],
    ['GET', '/members_changes_subscriptions', undefined, 'BL:Api:MembersChangesSubscriptions:Index'],
  ];
  for (const [method, path, body, permit] of cases) {
    const r = await c.request(method, `${c.base}${path}`, { token: readOnly, body });
    assert.deepEqual([r.status, r.body], [403, { error: `Not authorized: permit ${permit} required` }], `${method} ${path}`);
  }
  // MPC's names and Hei's earlier ones (aliases) open the same routes.
  for (const permits of [['BL:Api:Members:Get', 'BL:Api:Schema:Get'], ['BL:Api:Members:Show', 'BL:Api:LoyaltyClubs:Schema:Show']]) {
    const token = await c.tokenWith(permits);
    assert.equal((await c.request('GET', `${c.base}/members/${m.id}`, { token })).status, 200, permits[0]);
    assert.equal((await c.request('GET', `${c.base}/member_schema`, { token })).status, 200, permits[1]);
    assert.deepEqual((await c.request('GET', `${c.base}/schema`, { token })).body, (await c.request('GET', `${c.base}/member_schema`, { token })).body);
  }
  // A user token narrows the client token's permits to its role's.
  const user = await c.userToken(['BL:Api:Members:Show']);
  const denied = await c.request('POST', `${c.base}/members`, { headers: { Authorization: `Bearer ${user}` }, body: { properties: { email: 'y@example.com', first_name: 'Y' } } });
  assert.equal(denied.status, 403);
  assert.equal((await ctx.db.query('SELECT count(*)::int AS n FROM members WHERE loyalty_club_id = $1', [c.club.id])).rows[0].n, 1);
});

test("cross-club isolation: A's token never reaches B's members", async () => {
  const a = await clubWithDemoSchema(ctx);
  const b = await clubWithDemoSchema(ctx);
  const bm = (await b.request('POST', `${b.base}/members`, { body: { properties: { email: 'b@example.com', msisdn: '4740000301', first_name: 'B' } } })).body;
  // B's slug with A's token → 401, whatever the endpoint.
  for (const [method, path] of [['GET', '/members'], ['GET', `/members/${bm.id}`], ['PUT', `/members/${bm.id}`], ['DELETE', `/members/${bm.id}`], ['GET', '/schema']]) {
    const r = await a.request(method, `${b.base}${path}`, { body: method === 'PUT' ? { properties: {} } : undefined });
    assert.deepEqual([r.status, r.body], [401, { error: 'Client token does not match the loyalty club' }], `${method} ${path}`);
  }
  // A's own slug: B's member does not exist there.
  for (const [method, path] of [['GET', `/members/${bm.id}`], ['PUT', `/members/${bm.id}`], ['DELETE', `/members/${bm.id}`], ['GET', '/members/by_email/b%40example.com'], ['GET', '/members/by_msisdn/4740000301'], ['POST', `/members/${bm.id}/push_tokens`]]) {
    const body = method === 'PUT' ? { properties: { first_name: 'Hacked' } } : method === 'POST' ? { token: 't', platform: 'fcm' } : undefined;
    const r = await a.request(method, `${a.base}${path}`, { body });
    assert.deepEqual([r.status, r.body], [404, { error: 'Member not found' }], `${method} ${path}`);
  }
  const list = await a.request('GET', `${a.base}/members?ids[]=${bm.id}`);
  assert.deepEqual(list.body.members, []);
  const g = (await a.request('POST', `${a.base}/members_groups`, { body: { members_group: { name: 'A group' } } })).body.members_group;
  const add = await a.request('POST', `${a.base}/members_groups/${g.id}/members`, { body: { member_ids: [bm.id] } });
  assert.deepEqual([add.status, add.body.details], [422, { member_ids: { '0': [{ error: 'does_not_exist' }] } }]);
  const addOne = await a.request('POST', `${a.base}/members_groups/${g.id}/members/${bm.id}`);
  assert.deepEqual([addOne.status, addOne.body], [404, { error: 'Member not found' }]);
  const groupsOfB = await a.request('GET', `${a.base}/members/${bm.id}/groups`);
  assert.deepEqual([groupsOfB.status, groupsOfB.body], [404, { error: 'Member not found' }]);
  const after = await ctx.db.query('SELECT properties FROM members WHERE id = $1', [bm.id]);
  assert.equal(after.rows[0].properties.first_name, 'B');
});
