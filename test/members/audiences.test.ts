// Audience conditions against a known member set, through POST /v1/audiences/preview.
// Members, groups and push tokens are inserted with SQL: the conditions must hold for whatever
// rows the members API writes, and this keeps the test independent of that API's progress.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp, type TestClub } from '../helpers.ts';
import { insertMember, setSchema, SCHEMA, type MemberRow } from './audiences-fixtures.ts';
import { compileAudience } from '../../src/members/audiences.ts';

const ctx = await startTestApp();

let c: TestClub;
const id: Record<string, number> = {};
const name = new Map<number, string>();
let g1 = 0;
let g2 = 0;
let g3 = 0;

before(async () => {
  c = await ctx.newClub();
  await setSchema(ctx.db, c.club.id, SCHEMA);
  const rows: Record<string, MemberRow> = {
    A: {
      properties: { email: 'a@example.com', msisdn: '4790000001', first_name: 'Anna', city: 'Oslo', age: 30, score: 4.5, vip: true,
        birthday: '1994-05-01', gender: 'woman', interests: ['bikes', 'sport'], last_visit: '2024-06-01T10:00:00Z', address: { street: 'Storgata 1' } },
      consents: { sms_marketing: true, email_marketing: true }, subunit_ids: [1, 2], favorite_stores: [10], created_at: '2024-01-01T00:00:00Z', push_token: true,
    },
    B: {
      properties: { email: 'b@example.com', first_name: 'Bjørn', city: 'Bergen', age: 45, score: 2, vip: false, birthday: '1979-02-10', gender: 'man', interests: ['cars'] },
      consents: { sms_marketing: false }, email_status: 'hard_bounced', subunit_ids: [2], created_at: '2024-02-01T00:00:00Z',
    },
    C: {
      properties: { msisdn: '4790000003', first_name: 'Cecilie', city: 'Oslo', age: 18, birthday: '2006-12-24', gender: 'other', interests: [], last_visit: '2023-01-01T00:00:00Z' },
      consents: { email_marketing: true }, sms_status: 'verified', favorite_stores: [10, 11], created_at: '2024-03-01T00:00:00Z',
    },
    // Stale data from an older schema: a text age and a malformed date never match comparisons.
    D: {
      properties: { first_name: 'Dag', city: 'Trondheim', age: '40', last_visit: 'not a date', interests: ['sport'] },
      push_status: 'disabled', created_at: '2024-04-01T00:00:00Z',
    },
    E: {
      properties: { email: 'e@example.com', first_name: '', age: 60, score: 9.75, vip: true },
      consents: { newsletter: true }, created_at: '2024-05-01T00:00:00Z',
    },
  };
  for (const [n, row] of Object.entries(rows)) {
    id[n] = await insertMember(ctx.db, c.club.id, row);
    name.set(id[n], n);
  }
  const group = async (clubId: number, members: number[]) => {
    const g = (await ctx.db.query<{ id: number }>(`INSERT INTO member_groups (loyalty_club_id, name) VALUES ($1, 'g') RETURNING id`, [clubId])).rows[0].id;
    for (const m of members) await ctx.db.query('INSERT INTO member_group_memberships (group_id, member_id) VALUES ($1, $2)', [g, m]);
    return g;
  };
  g1 = await group(c.club.id, [id.A, id.B]);
  g2 = await group(c.club.id, [id.B, id.C]);
  g3 = await group(c.club.id, []);
  // Another club with a member matching nearly everything: it must never be counted here.
  const other = await ctx.newClub();
  await setSchema(ctx.db, other.club.id, SCHEMA);
  const x = await insertMember(ctx.db, other.club.id, { ...rows.A, properties: { ...rows.A.properties, email: 'x@example.com', msisdn: '4790000009' } });
  await group(other.club.id, [x]);
});

const P = 'member_properties';
const cond = (condition_group: string, field: string, operator: string, value?: unknown) =>
  value === undefined ? { condition_group, field, operator } : { condition_group, field, operator, value };

/** The names of the members the conditions select (sorted), checked against members_count. */
async function select(conditions: unknown[]): Promise<string> {
  const res = await c.request('POST', '/v1/audiences/preview', { body: { audience: { conditions } } });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const names = (res.body.sample_member_ids as number[]).map((i) => name.get(i) ?? `foreign:${i}`).sort();
  assert.equal(res.body.members_count, names.length);
  return names.join('');
}

const CASES: Array<[string, unknown[], string]> = [
  ['no conditions: every member of the club', [], 'ABCDE'],
  // text
  ['match', [cond(P, 'city', 'match', 'Oslo')], 'AC'],
  ['not_match includes members without the property', [cond(P, 'city', 'not_match', 'Oslo')], 'BDE'],
  ['any', [cond(P, 'city', 'any', ['Oslo', 'Bergen'])], 'ABC'],
  ['none', [cond(P, 'city', 'none', ['Oslo', 'Bergen'])], 'DE'],
  ['contains is a case-insensitive substring', [cond(P, 'city', 'contains', 'os')], 'AC'],
  ['contains takes wildcards literally', [cond(P, 'city', 'contains', '%')], ''],
  ['contains upper case', [cond(P, 'city', 'contains', 'ERG')], 'B'],
  ['exists', [cond(P, 'city', 'exists')], 'ABCD'],
  ['not_exists', [cond(P, 'city', 'not_exists')], 'E'],
  ['an empty string does not exist', [cond(P, 'first_name', 'not_exists')], 'E'],
  ['enum any', [cond(P, 'gender', 'any', ['man', 'other'])], 'BC'],
  // integer / number
  ['integer match', [cond(P, 'age', 'match', 30)], 'A'],
  ['integer gt skips a text value', [cond(P, 'age', 'gt', 30)], 'BE'],
  ['integer gte', [cond(P, 'age', 'gte', 30)], 'ABE'],
  ['integer lt', [cond(P, 'age', 'lt', 30)], 'C'],
  ['integer lte', [cond(P, 'age', 'lte', 18)], 'C'],
  ['integer between is inclusive', [cond(P, 'age', 'between', [18, 45])], 'ABC'],
  ['integer any', [cond(P, 'age', 'any', [18, 60])], 'CE'],
  ['integer none', [cond(P, 'age', 'none', [18, 60])], 'ABD'],
  ['number gt', [cond(P, 'score', 'gt', 4)], 'AE'],
  ['number between', [cond(P, 'score', 'between', [2, 4.5])], 'AB'],
  // boolean
  ['boolean match true', [cond(P, 'vip', 'match', true)], 'AE'],
  ['boolean match false', [cond(P, 'vip', 'match', false)], 'B'],
  ['boolean not_match', [cond(P, 'vip', 'not_match', true)], 'BCD'],
  // dates
  ['date lt', [cond(P, 'birthday', 'lt', '1990-01-01')], 'B'],
  ['date gte', [cond(P, 'birthday', 'gte', '1994-05-01')], 'AC'],
  ['date between', [cond(P, 'birthday', 'between', ['1980-01-01', '2000-12-31'])], 'A'],
  ['date-time gt (a malformed stored value never matches)', [cond(P, 'last_visit', 'gt', '2024-01-01')], 'A'],
  ['date-time lt', [cond(P, 'last_visit', 'lt', '2024-01-01T00:00:00+01:00')], 'C'],
  ['date-time exists', [cond(P, 'last_visit', 'exists')], 'ACD'],
  // arrays
  ['array contains', [cond(P, 'interests', 'contains', 'sport')], 'AD'],
  ['array any', [cond(P, 'interests', 'any', ['cars', 'bikes'])], 'AB'],
  ['array none', [cond(P, 'interests', 'none', ['sport'])], 'BCE'],
  ['array match holds all', [cond(P, 'interests', 'match', ['bikes', 'sport'])], 'A'],
  ['array exists (an empty list does not)', [cond(P, 'interests', 'exists')], 'ABD'],
  ['array not_exists', [cond(P, 'interests', 'not_exists')], 'CE'],
  ['object exists', [cond(P, 'address', 'exists')], 'A'],
  // contact identifiers, normalised as stored
  ['email match is case-insensitive', [cond(P, 'email', 'match', 'A@Example.COM')], 'A'],
  ['email any', [cond(P, 'email', 'any', ['b@example.com', 'e@example.com'])], 'BE'],
  ['email not_match', [cond(P, 'email', 'not_match', 'a@example.com')], 'BCDE'],
  ['email contains', [cond(P, 'email', 'contains', 'example')], 'ABE'],
  ['msisdn match normalises +47', [cond(P, 'msisdn', 'match', '+47 900 00 001')], 'A'],
  ['msisdn none', [cond(P, 'msisdn', 'none', ['4790000001'])], 'BCDE'],
  ['msisdn not_exists', [cond(P, 'msisdn', 'not_exists')], 'BDE'],
  ['msisdn contains ignores +, spaces', [cond(P, 'msisdn', 'contains', '+47 900')], 'AC'],
  // consents
  ['consent given', [cond('consents', 'sms_marketing', 'match', true)], 'A'],
  ['consent not given (refused or never recorded)', [cond('consents', 'sms_marketing', 'match', false)], 'BCDE'],
  ['consent not_match true', [cond('consents', 'sms_marketing', 'not_match', true)], 'BCDE'],
  ['consent exists', [cond('consents', 'sms_marketing', 'exists')], 'AB'],
  ['consent not_exists', [cond('consents', 'sms_marketing', 'not_exists')], 'CDE'],
  ['another consent', [cond('consents', 'newsletter', 'match', true)], 'E'],
  // channels
  ['sms_status match', [cond('channels', 'sms_status', 'match', 'verified')], 'C'],
  ['email_status any', [cond('channels', 'email_status', 'any', ['hard_bounced', 'disabled'])], 'B'],
  ['push_status none', [cond('channels', 'push_status', 'none', ['enabled'])], 'D'],
  ['push_status not_match', [cond('channels', 'push_status', 'not_match', 'enabled')], 'D'],
  ['has_push_token', [cond('channels', 'has_push_token', 'match', true)], 'A'],
  ['has_push_token not_match', [cond('channels', 'has_push_token', 'not_match', true)], 'BCDE'],
  // member
  ['created_at gte', [cond('member', 'created_at', 'gte', '2024-03-01')], 'CDE'],
  ['created_at lt', [cond('member', 'created_at', 'lt', '2024-02-01T00:00:00Z')], 'A'],
  ['created_at gt', [cond('member', 'created_at', 'gt', '2024-04-01T00:00:00Z')], 'E'],
  ['created_at lte', [cond('member', 'created_at', 'lte', '2024-02-01T00:00:00.000Z')], 'AB'],
  ['created_at between', [cond('member', 'created_at', 'between', ['2024-02-01', '2024-04-01'])], 'BCD'],
  ['subunit_ids contains', [cond('member', 'subunit_ids', 'contains', 2)], 'AB'],
  ['subunit_ids any', [cond('member', 'subunit_ids', 'any', [1, 3])], 'A'],
  ['subunit_ids none', [cond('member', 'subunit_ids', 'none', [2])], 'CDE'],
  ['subunit_ids match holds all', [cond('member', 'subunit_ids', 'match', [1, 2])], 'A'],
  ['subunit_ids exists', [cond('member', 'subunit_ids', 'exists')], 'AB'],
  ['subunit_ids not_exists', [cond('member', 'subunit_ids', 'not_exists')], 'CDE'],
  ['favorite_stores any', [cond('member', 'favorite_stores', 'any', [11])], 'C'],
  ['favorite_stores contains', [cond('member', 'favorite_stores', 'contains', 10)], 'AC'],
  // AND / OR
  ['AND of two conditions', [cond(P, 'city', 'match', 'Oslo'), cond('consents', 'sms_marketing', 'match', true)], 'A'],
  ['any_of is OR', [{ condition_group: 'any_of', conditions: [cond(P, 'city', 'match', 'Bergen'), cond(P, 'age', 'lt', 20)] }], 'BC'],
  [
    'nested any_of inside AND',
    [
      cond(P, 'vip', 'match', true),
      { condition_group: 'any_of', conditions: [
        cond(P, 'city', 'match', 'Oslo'),
        { condition_group: 'any_of', conditions: [cond(P, 'age', 'gt', 50), cond('consents', 'newsletter', 'match', true)] },
      ] },
    ],
    'AE',
  ],
  ['any_of of negations', [{ condition_group: 'any_of', conditions: [cond(P, 'city', 'not_exists'), cond('channels', 'push_status', 'match', 'disabled')] }], 'DE'],
];

for (const [title, conditions, expected] of CASES) {
  test(`conditions: ${title}`, async () => {
    assert.equal(await select(conditions), expected);
  });
}

test('conditions: groups (ids resolved in the test)', async () => {
  const G = 'groups';
  const F = 'members_group_ids';
  assert.equal(await select([cond(G, F, 'contains', g1)]), 'AB');
  assert.equal(await select([cond(G, F, 'any', [g1, g2])]), 'ABC');
  assert.equal(await select([cond(G, F, 'none', [g1])]), 'CDE');
  assert.equal(await select([cond(G, F, 'match', [g1, g2])]), 'B');
  assert.equal(await select([cond(G, F, 'match', [g1, g3])]), '');
  assert.equal(await select([cond(G, F, 'exists')]), 'ABC');
  assert.equal(await select([cond(G, F, 'not_exists')]), 'DE');
  // The MPC example's spelling: the field under member_properties with a type hint.
  assert.equal(await select([{ condition_group: P, field: F, operator: 'any', value: [g2], type: 'array' }]), 'BC');
});

test('conditions: member ids', async () => {
  assert.equal(await select([cond('member', 'id', 'match', id.A)]), 'A');
  assert.equal(await select([cond('member', 'id', 'any', [id.A, id.C])]), 'AC');
  assert.equal(await select([cond('member', 'id', 'none', [id.A])]), 'BCDE');
  assert.equal(await select([cond('member', 'id', 'not_match', id.A)]), 'BCDE');
  assert.equal(await select([cond('member', 'id', 'gt', id.C)]), 'DE');
  assert.equal(await select([cond('member', 'id', 'lte', id.B)]), 'AB');
  assert.equal(await select([cond('member', 'id', 'between', [id.B, id.D])]), 'BCD');
});

test('preview: reachable_count per channel, marketing and not', async () => {
  const count = async (channel: string, marketing?: boolean) => {
    const res = await c.request('POST', '/v1/audiences/preview', { body: { audience: { conditions: [] }, channel, marketing } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.members_count, 5);
    return res.body.reachable_count;
  };
  assert.equal(await count('sms'), 1); // A: msisdn + consent (C has no sms_marketing)
  assert.equal(await count('sms', false), 2); // A, C (verified)
  assert.equal(await count('email'), 1); // A (C has consent but no address; B bounced)
  assert.equal(await count('email', false), 2); // A, E
  assert.equal(await count('push', false), 1); // A holds the only token
  assert.equal(await count('push', true), 0); // push_marketing is in the schema and A has not given it
  const none = await c.request('POST', '/v1/audiences/preview', { body: { audience: { conditions: [] } } });
  assert.equal('reachable_count' in none.body, false);
});

test('compiled SQL carries values only as parameters, numbered from firstParam', () => {
  const evil = "x'); DELETE FROM members; --";
  const compiled = compileAudience(
    [cond(P, 'city', 'match', evil), cond(P, 'city', 'contains', evil), cond('consents', 'sms_marketing', 'match', true)],
    SCHEMA,
    { firstParam: 4 },
  );
  assert.equal(compiled.sql.includes('DELETE'), false);
  assert.equal(compiled.sql.includes('city'), false);
  assert.match(compiled.sql, /\$4::jsonb/);
  assert.equal(compiled.nextParam, 4 + compiled.params.length);
  assert.deepEqual(compiled.params[0], JSON.stringify({ city: evil }));
});

test('the injection attempt runs as a plain value', async () => {
  assert.equal(await select([cond(P, 'city', 'match', "Oslo' OR 1=1 --")]), '');
  assert.equal(await select([cond(P, 'city', 'contains', "' OR ''='")]), '');
});
