// /v1/audiences: CRUD, counts, permits, cross-club isolation and the 422 trees of bad conditions.
// Members are inserted with SQL (see audiences-fixtures.ts).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp, type TestClub } from '../helpers.ts';
import { insertMember, setSchema, SCHEMA } from './audiences-fixtures.ts';
import { resolveAudience, validateConditions } from '../../src/members/audiences.ts';
import { ValidationFailed } from '../../src/platform/errors.ts';

const ctx = await startTestApp();

let c: TestClub;
let other: TestClub;
const P = 'member_properties';
const oslo = [{ condition_group: P, field: 'city', operator: 'match', value: 'Oslo' }];

before(async () => {
  c = await ctx.newClub();
  other = await ctx.newClub();
  for (const club of [c, other]) await setSchema(ctx.db, club.club.id, SCHEMA);
  await insertMember(ctx.db, c.club.id, { properties: { city: 'Oslo', msisdn: '4791000001' }, consents: { sms_marketing: true } });
  await insertMember(ctx.db, c.club.id, { properties: { city: 'Oslo', msisdn: '4791000002' } });
  await insertMember(ctx.db, c.club.id, { properties: { city: 'Bergen' } });
  await insertMember(ctx.db, other.club.id, { properties: { city: 'Oslo' } });
});

const create = (club: TestClub, name: string, conditions: unknown) => club.request('POST', '/v1/audiences', { body: { audience: { name, conditions } } });

test('create, show, update, list and delete an audience', async () => {
  const created = await create(c, 'Oslo', oslo);
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const a = created.body.audience;
  assert.deepEqual({ ...a, id: 0, created_at: '', updated_at: '' }, { id: 0, name: 'Oslo', conditions: oslo, members_count: 2, created_at: '', updated_at: '' });
  assert.match(a.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

  const shown = await c.request('GET', `/v1/audiences/${a.id}`);
  assert.equal(shown.status, 200);
  assert.deepEqual(shown.body.audience, a);

  // A new member counts on show (recomputed) …
  await insertMember(ctx.db, c.club.id, { properties: { city: 'Oslo' } });
  assert.equal((await c.request('GET', `/v1/audiences/${a.id}`)).body.audience.members_count, 3);

  const renamed = await c.request('PUT', `/v1/audiences/${a.id}`, { body: { audience: { name: 'Oslo folk' } } });
  assert.equal(renamed.status, 200);
  assert.equal(renamed.body.audience.name, 'Oslo folk');
  assert.deepEqual(renamed.body.audience.conditions, oslo);

  const bergen = [{ condition_group: P, field: 'city', operator: 'any', value: ['Bergen'] }];
  const updated = await c.request('PUT', `/v1/audiences/${a.id}`, { body: { audience: { conditions: bergen } } });
  assert.equal(updated.status, 200);
  assert.deepEqual(updated.body.audience.conditions, bergen);
  assert.equal(updated.body.audience.members_count, 1);
  assert.equal(updated.body.audience.name, 'Oslo folk');

  const second = await create(c, 'Everyone', []);
  assert.equal(second.body.audience.members_count, 4);
  const list = await c.request('GET', '/v1/audiences?per_page=1&sort_by=name&sort_direction=asc');
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.audiences.map((x: any) => x.name), ['Everyone']);
  assert.equal(list.body.pagination_info.total_count, 2);
  assert.equal(list.body.pagination_info.next_page, 2);
  const page2 = await c.request('GET', '/v1/audiences?per_page=1&page_no=2&sort_by=name');
  assert.deepEqual(page2.body.audiences.map((x: any) => [x.name, x.members_count]), [['Oslo folk', 1]]);

  const deleted = await c.request('DELETE', `/v1/audiences/${a.id}`);
  assert.equal(deleted.status, 204);
  assert.equal((await c.request('GET', `/v1/audiences/${a.id}`)).status, 404);
  assert.equal((await c.request('DELETE', `/v1/audiences/${a.id}`)).status, 404);
  await c.request('DELETE', `/v1/audiences/${second.body.audience.id}`);
});

test('count a stored audience, with reachability', async () => {
  const a = (await create(c, 'Oslo', oslo)).body.audience;
  const plain = await c.request('GET', `/v1/audiences/${a.id}/count`);
  assert.equal(plain.status, 200);
  assert.equal(plain.body.members_count, 3);
  assert.equal(plain.body.sample_member_ids.length, 3);
  assert.equal('reachable_count' in plain.body, false);
  const sms = await c.request('GET', `/v1/audiences/${a.id}/count?channel=sms`);
  assert.equal(sms.body.reachable_count, 1); // marketing by default: only the consenting one
  const smsAny = await c.request('GET', `/v1/audiences/${a.id}/count?channel=sms&marketing=false`);
  assert.equal(smsAny.body.reachable_count, 2);
  // MPC's `unsubscribed` status is a valid condition value (a member with it is never reachable).
  await ctx.db.query(`UPDATE members SET email_status = 'unsubscribed' WHERE loyalty_club_id = $1 AND id = (SELECT min(id) FROM members WHERE loyalty_club_id = $1)`, [c.club.id]);
  const unsubscribed = await c.request('POST', '/v1/audiences/preview', { body: { audience: { conditions: [{ condition_group: 'channels', field: 'email_status', operator: 'match', value: 'unsubscribed' }] }, channel: 'email', marketing: false } });
  assert.deepEqual([unsubscribed.status, unsubscribed.body.members_count, unsubscribed.body.reachable_count], [200, 1, 0]);
  await ctx.db.query(`UPDATE members SET email_status = 'enabled' WHERE loyalty_club_id = $1`, [c.club.id]);
  const bad = await c.request('GET', `/v1/audiences/${a.id}/count?channel=fax`);
  assert.equal(bad.status, 422);
  assert.deepEqual(bad.body.details, { channel: [{ error: 'inclusion', options: { in: ['sms', 'email', 'push'] } }] });
});

test('an audience of another club is not found; its members are never counted', async () => {
  const mine = (await create(c, 'Mine', oslo)).body.audience;
  const theirs = (await create(other, 'Theirs', oslo)).body.audience;
  assert.equal(theirs.members_count, 1);
  for (const [method, path, body] of [
    ['GET', `/v1/audiences/${mine.id}`, undefined],
    ['GET', `/v1/audiences/${mine.id}/count`, undefined],
    ['PUT', `/v1/audiences/${mine.id}`, { audience: { name: 'stolen' } }],
    ['DELETE', `/v1/audiences/${mine.id}`, undefined],
  ] as const) {
    const res = await other.request(method, path, { body });
    assert.equal(res.status, 404, `${method} ${path}`);
    assert.deepEqual(res.body, { error: 'Audience not found' });
  }
  assert.equal((await c.request('GET', `/v1/audiences/${mine.id}`)).body.audience.name, 'Mine');
  const list = await other.request('GET', '/v1/audiences');
  assert.deepEqual(list.body.audiences.map((x: any) => x.name), ['Theirs']);
  // A group of another club cannot be named.
  const g = (await ctx.db.query<{ id: number }>(`INSERT INTO member_groups (loyalty_club_id, name) VALUES ($1, 'x') RETURNING id`, [c.club.id])).rows[0].id;
  const res = await create(other, 'Their groups', [{ condition_group: 'groups', field: 'members_group_ids', operator: 'any', value: [g] }]);
  assert.equal(res.status, 422);
  assert.deepEqual(res.body.details, { audience: { conditions: { '0': { value: { '0': [{ error: 'does_not_exist' }] } } } } });
});

test('ids that are not numbers are not found', async () => {
  assert.equal((await c.request('GET', '/v1/audiences/abc')).status, 404);
  assert.equal((await c.request('GET', '/v1/audiences/0')).status, 404);
  assert.equal((await c.request('GET', '/v1/audiences/99999999999999999999')).status, 404);
});

test('permits: each endpoint needs its own', async () => {
  const token = await c.tokenWith(['Messages:Api:Audiences:Index']);
  assert.equal((await c.request('GET', '/v1/audiences', { token })).status, 200);
  const denied = await c.request('POST', '/v1/audiences', { token, body: { audience: { name: 'x', conditions: [] } } });
  assert.equal(denied.status, 403);
  assert.equal((await c.request('POST', '/v1/audiences/preview', { token, body: { audience: { conditions: [] } } })).status, 403);
  for (const p of ['Index', 'Get', 'Create', 'Update', 'Destroy', 'Count']) assert.ok(ctx.permits.includes(`Messages:Api:Audiences:${p}`), p);
});

test('delete is refused while a sending still to be prepared references the audience', async () => {
  const a = (await create(c, 'Used', oslo)).body.audience;
  const msg = (await ctx.db.query<{ id: number }>(`INSERT INTO messages (loyalty_club_id, service, marketing) VALUES ($1, 'campaigns', true) RETURNING id`, [c.club.id])).rows[0].id;
  const s = (await ctx.db.query<{ id: number }>(
    `INSERT INTO sendings (loyalty_club_id, message_id, status, audience_type, audience_id) VALUES ($1, $2, 'scheduled', 'reference', $3) RETURNING id`,
    [c.club.id, msg, a.id],
  )).rows[0].id;
  const refused = await c.request('DELETE', `/v1/audiences/${a.id}`);
  assert.equal(refused.status, 405);
  assert.deepEqual(refused.body, { error: `Audience is used by sending ${s}, which is scheduled` });
  await ctx.db.query(`UPDATE sendings SET status = 'transmitted' WHERE id = $1`, [s]);
  assert.equal((await c.request('DELETE', `/v1/audiences/${a.id}`)).status, 204);
});

const details = async (conditions: unknown, path = '/v1/audiences') => {
  const body = path === '/v1/audiences' ? { audience: { name: 'bad', conditions } } : { audience: { conditions } };
  const res = await c.request('POST', path, { body });
  assert.equal(res.status, 422, JSON.stringify(res.body));
  assert.equal(res.body.error, 'Invalid parameters');
  return res.body.details.audience.conditions;
};

test('422: unknown group, field, operator, consent', async () => {
  assert.deepEqual(await details([{ condition_group: 'purchases', field: 'x', operator: 'match', value: 1 }]), {
    '0': { condition_group: [{ error: 'inclusion', options: { in: ['member_properties', 'consents', 'channels', 'groups', 'member', 'any_of'] } }] },
  });
  assert.deepEqual(await details([{ condition_group: P, field: 'shoe_size', operator: 'match', value: 42 }]), {
    '0': { field: [{ error: 'inclusion', options: { in: ['address', 'age', 'birthday', 'city', 'email', 'first_name', 'gender', 'interests', 'last_visit', 'msisdn', 'score', 'vip'] } }] },
  });
  assert.deepEqual(await details([{ condition_group: 'consents', field: 'phone_calls', operator: 'match', value: true }]), {
    '0': { field: [{ error: 'inclusion', options: { in: ['email_marketing', 'newsletter', 'push_marketing', 'sms_marketing'] } }] },
  });
  assert.deepEqual(await details([{ condition_group: P, field: 'city', operator: 'like', value: 'O%' }]), {
    '0': { operator: [{ error: 'inclusion', options: { in: ['match', 'not_match', 'any', 'none', 'contains', 'exists', 'not_exists'] } }] },
  });
  // An operator that exists but not for this type.
  assert.deepEqual(await details([{ condition_group: P, field: 'vip', operator: 'gt', value: true }]), {
    '0': { operator: [{ error: 'inclusion', options: { in: ['match', 'not_match', 'exists', 'not_exists'] } }] },
  });
  assert.deepEqual(await details([{ condition_group: 'member', field: 'email', operator: 'match', value: 'a@b.no' }]), {
    '0': { field: [{ error: 'inclusion', options: { in: ['id', 'created_at', 'subunit_ids', 'favorite_stores'] } }] },
  });
  assert.deepEqual(await details([{ condition_group: 'channels', field: 'sms', operator: 'match', value: 'enabled' }]), {
    '0': { field: [{ error: 'inclusion', options: { in: ['sms_status', 'email_status', 'push_status', 'has_push_token'] } }] },
  });
});

test('422: missing and unknown keys', async () => {
  assert.deepEqual(await details([{ condition_group: P }, {}, { condition_group: P, field: 'city', operator: 'match', value: 'Oslo', negate: true }]), {
    '0': { field: [{ error: 'blank' }], operator: [{ error: 'blank' }] },
    '1': { condition_group: [{ error: 'blank' }] },
    '2': { negate: [{ error: 'not_permitted' }] },
  });
  assert.deepEqual(await details([{ condition_group: P, field: 'city', operator: 'match' }, { condition_group: P, field: 'city', operator: 'exists', value: 'x' }]), {
    '0': { value: [{ error: 'blank' }] },
    '1': { value: [{ error: 'not_permitted' }] },
  });
  assert.deepEqual(await details(['city = Oslo', { condition_group: P, field: 'city', operator: 'match', value: 'x', type: 'list' }]), {
    '0': [{ error: 'must_be_an_object' }],
    '1': { type: [{ error: 'inclusion', options: { in: ['string', 'number', 'integer', 'boolean', 'array', 'date', 'date-time'] } }] },
  });
});

test('422: wrong value types for the field and operator', async () => {
  assert.deepEqual(
    await details([
      { condition_group: P, field: 'age', operator: 'gt', value: '30' },
      { condition_group: P, field: 'age', operator: 'match', value: 30.5 },
      { condition_group: P, field: 'score', operator: 'between', value: [5] },
      { condition_group: P, field: 'score', operator: 'between', value: [5, 1] },
      { condition_group: P, field: 'city', operator: 'any', value: 'Oslo' },
      { condition_group: P, field: 'city', operator: 'any', value: [] },
      { condition_group: P, field: 'city', operator: 'any', value: ['Oslo', 7] },
      { condition_group: P, field: 'vip', operator: 'match', value: 'yes' },
      { condition_group: P, field: 'birthday', operator: 'lt', value: '1990-02-30' },
      { condition_group: P, field: 'last_visit', operator: 'gt', value: 'yesterday' },
      { condition_group: P, field: 'gender', operator: 'match', value: 'female' },
      { condition_group: P, field: 'interests', operator: 'contains', value: 'knitting' },
      { condition_group: 'consents', field: 'sms_marketing', operator: 'match', value: 'true' },
      { condition_group: 'channels', field: 'sms_status', operator: 'match', value: 'on' },
      { condition_group: 'member', field: 'created_at', operator: 'gte', value: 1700000000 },
      { condition_group: 'member', field: 'subunit_ids', operator: 'any', value: ['a'] },
      { condition_group: P, field: 'city', operator: 'match', value: '' },
    ]),
    {
      '0': { value: [{ error: 'not_an_integer' }] },
      '1': { value: [{ error: 'not_an_integer' }] },
      '2': { value: [{ error: 'too_short', options: { min_length: 2 } }] },
      '3': { value: [{ error: 'invalid', options: { format: '[low, high]' } }] },
      '4': { value: [{ error: 'must_be_an_array' }] },
      '5': { value: [{ error: 'too_short', options: { min_length: 1 } }] },
      '6': { value: { '1': [{ error: 'invalid', options: { format: 'string' } }] } },
      '7': { value: [{ error: 'invalid', options: { format: 'boolean' } }] },
      '8': { value: [{ error: 'invalid_format', options: { format: 'date' } }] },
      '9': { value: [{ error: 'invalid_format', options: { format: 'date-time' } }] },
      '10': { value: [{ error: 'inclusion', options: { in: ['man', 'woman', 'other'] } }] },
      '11': { value: [{ error: 'inclusion', options: { in: ['bikes', 'sport', 'cars'] } }] },
      '12': { value: [{ error: 'invalid', options: { format: 'boolean' } }] },
      '13': { value: [{ error: 'inclusion', options: { in: ['enabled', 'verified', 'disabled', 'hard_bounced', 'unsubscribed'] } }] },
      '14': { value: [{ error: 'invalid', options: { format: 'string' } }] },
      '15': { value: { '0': [{ error: 'not_an_integer' }] } },
      '16': { value: [{ error: 'blank' }] },
    },
  );
});

test('422: malformed msisdn and e-mail values', async () => {
  assert.deepEqual(
    await details([
      { condition_group: P, field: 'msisdn', operator: 'match', value: '12-34' },
      { condition_group: P, field: 'email', operator: 'any', value: ['a@example.com', 'not-an-email'] },
      // contains takes any fragment
      { condition_group: P, field: 'email', operator: 'contains', value: '@example' },
    ], '/v1/audiences/preview'),
    {
      '0': { value: [{ error: 'invalid_msisdn' }] },
      '1': { value: { '1': [{ error: 'invalid_format', options: { format: 'email' } }] } },
    },
  );
});

test('422: any_of shape and nesting depth', async () => {
  const leaf = { condition_group: P, field: 'city', operator: 'exists' };
  const nest = (depth: number): unknown => (depth === 0 ? leaf : { condition_group: 'any_of', conditions: [nest(depth - 1)] });
  assert.deepEqual(
    await details([
      { condition_group: 'any_of', conditions: [] },
      { condition_group: 'any_of' },
      { condition_group: 'any_of', conditions: [leaf], field: 'x' },
      { condition_group: 'any_of', conditions: [leaf, { condition_group: P, field: 'nope', operator: 'exists' }] },
      nest(5),
    ]),
    {
      '0': { conditions: [{ error: 'too_short', options: { min_length: 1 } }] },
      '1': { conditions: [{ error: 'blank' }] },
      '2': { field: [{ error: 'not_permitted' }] },
      '3': { conditions: { '1': { field: [{ error: 'inclusion', options: { in: SCHEMA_FIELDS } }] } } },
      '4': { conditions: { '0': { conditions: { '0': { conditions: { '0': { conditions: { '0': { conditions: [{ error: 'too_deep', options: { max_depth: 4 } }] } } } } } } } } },
    },
  );
  // Four levels are fine.
  const ok = await c.request('POST', '/v1/audiences/preview', { body: { audience: { conditions: [nest(4)] } } });
  assert.equal(ok.status, 200);
});

const SCHEMA_FIELDS = ['address', 'age', 'birthday', 'city', 'email', 'first_name', 'gender', 'interests', 'last_visit', 'msisdn', 'score', 'vip'];

test('422: the outer payload', async () => {
  const res = await c.request('POST', '/v1/audiences', { body: { audience: { conditions: {} } } });
  assert.equal(res.status, 422);
  assert.deepEqual(res.body.details, { audience: { name: [{ error: 'blank' }], conditions: [{ error: 'must_be_an_array' }] } });
  const upd = await c.request('PUT', '/v1/audiences/1', { body: { audience: { nme: 'x' } } });
  assert.equal(upd.status, 422);
  assert.deepEqual(upd.body.details, { audience: { nme: [{ error: 'not_permitted' }] } });
});

test('validateConditions: paths are relative to the conditions array', () => {
  const v = validateConditions([{ condition_group: 'consents', field: 'sms', operator: 'match', value: true }], { consents: { sms_marketing: {} } });
  assert.deepEqual(v.tree, { '0': { field: [{ error: 'inclusion', options: { in: ['sms_marketing'] } }] } });
  assert.deepEqual(validateConditions('x', {}).tree, { base: [{ error: 'must_be_an_array' }] });
  assert.equal(validateConditions([], null).empty, true);
});

test('a stored audience that no longer fits a changed schema answers 409 on count', async () => {
  const club = await ctx.newClub();
  await setSchema(ctx.db, club.club.id, SCHEMA);
  const a = (await create(club, 'Cities', oslo)).body.audience;
  await setSchema(ctx.db, club.club.id, { ...SCHEMA, properties: { email: { type: 'string', format: 'email' } } });
  const res = await club.request('GET', `/v1/audiences/${a.id}/count`);
  assert.equal(res.status, 409);
  const shown = await club.request('GET', `/v1/audiences/${a.id}`);
  assert.equal(shown.status, 200);
});

test('resolveAudience: stored or inline, in the set-based shape the delivery engine uses', async () => {
  const a = (await create(c, 'Resolved', oslo)).body.audience;
  const r = await resolveAudience(ctx.db, c.club.id, { type: 'reference', id: a.id }, { firstParam: 3 });
  assert.ok(r);
  assert.equal(r.audienceId, a.id);
  assert.deepEqual(r.conditions, oslo);
  const { rows } = await ctx.db.query<{ n: number; sms: number }>(
    `SELECT count(*)::int AS n, count(*) FILTER (WHERE hei_member_reachable(m, 'sms', $2, $${r.nextParam}::jsonb))::int AS sms
       FROM members m WHERE m.loyalty_club_id = $1 AND (${r.sql})`,
    [c.club.id, true, ...r.params, JSON.stringify(r.schemaConsents)],
  );
  assert.deepEqual(rows[0], { n: 3, sms: 1 });
  // Another club's id resolves to nothing; inline conditions work for any club.
  assert.equal(await resolveAudience(ctx.db, other.club.id, { type: 'reference', id: a.id }), null);
  const inline = await resolveAudience(ctx.db, other.club.id, { type: 'inline', conditions: oslo });
  assert.equal(inline?.audienceId, null);
  await assert.rejects(resolveAudience(ctx.db, c.club.id, { type: 'inline', conditions: [{ condition_group: 'x' }] }), ValidationFailed);
});

test('422, never 500: prototype names, NUL characters, integers beyond 2^53', async () => {
  assert.deepEqual(
    await details([
      { condition_group: 'member', field: 'constructor', operator: 'match', value: 1 },
      { condition_group: P, field: '__proto__', operator: 'exists' },
      { condition_group: 'channels', field: 'toString', operator: 'match', value: 'enabled' },
      { condition_group: 'consents', field: 'hasOwnProperty', operator: 'exists' },
      { condition_group: 'member', field: 'id', operator: 'match', value: 2 ** 64 },
      { condition_group: 'groups', field: 'members_group_ids', operator: 'contains', value: 1e300 },
    ], '/v1/audiences/preview'),
    {
      '0': { field: [{ error: 'inclusion', options: { in: ['id', 'created_at', 'subunit_ids', 'favorite_stores'] } }] },
      '1': { field: [{ error: 'inclusion', options: { in: SCHEMA_FIELDS } }] },
      '2': { field: [{ error: 'inclusion', options: { in: ['sms_status', 'email_status', 'push_status', 'has_push_token'] } }] },
      '3': { field: [{ error: 'inclusion', options: { in: ['email_marketing', 'newsletter', 'push_marketing', 'sms_marketing'] } }] },
      '4': { value: [{ error: 'not_an_integer' }] },
      '5': { value: [{ error: 'not_an_integer' }] },
    },
  );
  // NUL never reaches the store: the edge rule refuses it at its field.
  assert.deepEqual(await details([{ condition_group: P, field: 'city', operator: 'match', value: 'Os\u0000lo' }], '/v1/audiences/preview'), {
    '0': { value: [{ error: 'invalid_format', options: { format: 'text' } }] },
  });
});

test('date-time values: a date is 00:00 UTC, a time without zone is UTC', async () => {
  const preview = async (value: string) =>
    (await c.request('POST', '/v1/audiences/preview', { body: { audience: { conditions: [{ condition_group: 'member', field: 'created_at', operator: 'gte', value }] } } })).body;
  await ctx.db.query(`UPDATE members SET created_at = '2020-06-01T12:00:00Z' WHERE loyalty_club_id = $1`, [c.club.id]);
  assert.equal((await preview('2020-06-01')).members_count, 4);
  assert.equal((await preview('2020-06-01 12:00')).members_count, 4);
  assert.equal((await preview('2020-06-01T12:00:01')).members_count, 0);
  assert.equal((await preview('2020-06-01T13:00:00+01:00')).members_count, 4);
  assert.equal((await preview('2020-06-02')).members_count, 0);
});

test('hei_try_timestamptz: malformed stored date-times are absent, not an error', async () => {
  const { rows } = await ctx.db.query<{ a: Date | null; b: Date | null; c: Date | null }>(
    `SELECT hei_try_timestamptz('2024-13-45T00:00:00Z') AS a, hei_try_timestamptz('soon') AS b, hei_try_timestamptz('2024-01-02T03:04:05Z') AS c`,
  );
  assert.equal(rows[0].a, null);
  assert.equal(rows[0].b, null);
  assert.equal(rows[0].c?.toISOString(), '2024-01-02T03:04:05.000Z');
});
