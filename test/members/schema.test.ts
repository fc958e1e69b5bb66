// The club schema (show / update) and member validation against it: every failing case answers
// the MPC 422 tree and writes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp } from '../helpers.ts';
import { clubWithDemoSchema } from './members-helpers.ts';
import { demoMemberSchema } from '../../src/members/schema.ts';

const ctx = await startTestApp();
const invalid = (details: unknown) => ({ error: 'Invalid parameters', details });

test('a new club shows the default schema with its own languages', async () => {
  const c = await ctx.newClub();
  const r = await c.request('GET', `/v3/${c.club.slug}/schema`);
  assert.equal(r.status, 200);
  assert.deepEqual(r.body.identifiers, ['email', 'msisdn']);
  assert.deepEqual(Object.keys(r.body.consents).sort(), ['email_marketing', 'push_marketing', 'sms_marketing']);
  assert.deepEqual(r.body.languages, ['en', 'no']);
  assert.equal(r.body.default_language, 'en');
  assert.deepEqual(r.body.properties.msisdn, { type: 'string', format: 'msisdn' });
  assert.deepEqual(r.body.required, []);
});

test('update the schema; the stored document is the documented format', async () => {
  const c = await ctx.newClub();
  const schema = demoMemberSchema(['en', 'no'], 'no');
  const r = await c.request('PUT', `/v3/${c.club.slug}/schema`, { body: schema });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(r.body, schema);
  const { rows } = await ctx.db.query('SELECT member_schema FROM loyalty_clubs WHERE id = $1', [c.club.id]);
  assert.deepEqual(rows[0].member_schema, schema);
  assert.deepEqual((await c.request('GET', `/v3/${c.club.slug}/schema`)).body, schema);
});

test('an invalid schema is refused with the 422 tree', async () => {
  const c = await ctx.newClub();
  const r = await c.request('PUT', `/v3/${c.club.slug}/schema`, {
    body: {
      identifiers: ['email', 'phone'],
      consents: { 'Bad Name': { version: '' }, ok: { required: 'yes', colour: 1 } },
      languages: ['en'],
      default_language: 'de',
      properties: { first_name: { type: 'text' }, age: { type: 'integer', enum: ['x'] }, tags: { type: 'array' }, email: { type: 'string' } },
      required: ['first_name', 'missing'],
      extra: true,
    },
  });
  assert.equal(r.status, 422);
  assert.deepEqual(r.body, invalid({
    extra: [{ error: 'not_permitted' }],
    properties: {
      first_name: { type: [{ error: 'inclusion', options: { in: ['string', 'integer', 'number', 'boolean', 'array'] } }] },
      age: { enum: [{ error: 'invalid' }] },
      tags: { items: [{ error: 'blank' }] },
      email: { format: [{ error: 'inclusion', options: { in: ['email'] } }] },
    },
    identifiers: { '1': [{ error: 'inclusion', options: { in: ['email', 'msisdn'] } }] },
    consents: {
      'Bad Name': [{ error: 'invalid_format', options: { format: '/^[a-z][a-z0-9_]{0,63}$/' } }],
      ok: { colour: [{ error: 'not_permitted' }], required: [{ error: 'invalid', options: { format: 'boolean' } }] },
    },
    default_language: [{ error: 'inclusion', options: { in: ['en'] } }],
    required: { '1': [{ error: 'does_not_exist' }] },
  }));
});

test('member properties: types, formats, enums, patterns, bounds, unknown keys', async () => {
  const c = await clubWithDemoSchema(ctx);
  const r = await c.request('POST', `${c.base}/members`, {
    body: {
      properties: {
        email: 'not-an-email', msisdn: '+47 12', first_name: 42, birthday: '2021-02-30', gender: 'robot', language: 'pl',
        interests: ['fashion', 'golf'], child_birth_years: [2010, 1800, 'x'], postal_code: '12a4', shoe_size: 44,
      },
      consents: { sms_marketing: 'yes', newsletter: true, email_marketing: { status: true, when: 1 } },
    },
  });
  assert.equal(r.status, 422);
  assert.deepEqual(r.body, invalid({
    properties: {
      email: [{ error: 'invalid_format', options: { format: 'email' } }],
      msisdn: [{ error: 'invalid_msisdn' }],
      first_name: [{ error: 'invalid', options: { format: 'string' } }],
      birthday: [{ error: 'invalid_format', options: { format: 'date' } }],
      gender: [{ error: 'inclusion', options: { in: ['man', 'woman', 'other'] } }],
      language: [{ error: 'inclusion', options: { in: ['en', 'no'] } }, { error: 'value_not_match', options: { value: 'pl', values: 'en, no', property: 'language' } }],
      interests: { '1': [{ error: 'inclusion', options: { in: ['fashion', 'sportswear', 'food_and_drinks', 'kids', 'electronics', 'beauty', 'home_and_interior', 'bikes_and_cars'] } }] },
      child_birth_years: { '1': [{ error: 'greater_or_equal_to', options: { number: 1900 } }], '2': [{ error: 'not_an_integer' }] },
      postal_code: [{ error: 'invalid_format', options: { format: '/^[0-9]{4}$/' } }],
      shoe_size: [{ error: 'not_permitted' }],
    },
    consents: {
      sms_marketing: [{ error: 'invalid', options: { format: 'boolean' } }],
      newsletter: [{ error: 'not_permitted' }],
      email_marketing: { when: [{ error: 'not_permitted' }] },
    },
  }));
  assert.equal((await ctx.db.query('SELECT count(*)::int AS n FROM members WHERE loyalty_club_id = $1', [c.club.id])).rows[0].n, 0);
});

test('request shape: unknown fields, wrong types and bad JSON never reach the store', async () => {
  const c = await clubWithDemoSchema(ctx);
  const cases: Array<[unknown, unknown]> = [
    [{ properties: { email: 'a@example.com', first_name: 'A' }, admin: true }, { admin: [{ error: 'not_permitted' }] }],
    [{ properties: 'a@example.com' }, { properties: [{ error: 'must_be_an_object' }] }],
    [{}, { properties: [{ error: 'blank' }] }],
    [{ properties: { email: 'a@example.com', first_name: 'A' }, sms_enabled: 'no' }, { sms_enabled: [{ error: 'invalid', options: { format: 'boolean' } }] }],
    [{ properties: { email: 'a@example.com', first_name: 'A' }, favorite_stores: [0] }, { favorite_stores: { '0': [{ error: 'greater_or_equal_to', options: { number: 1 } }] } }],
    [{ properties: { email: 'a@example.com', first_name: 'A' }, password: '123' }, { password: [{ error: 'too_short', options: { min_length: 6 } }] }],
  ];
  for (const [body, details] of cases) {
    const r = await c.request('POST', `${c.base}/members`, { body });
    assert.deepEqual([r.status, r.body], [422, invalid(details)], JSON.stringify(body));
  }
  const raw = await c.request('POST', `${c.base}/members`, { raw: '{"properties": ' });
  assert.deepEqual([raw.status, raw.text], [400, '']);
  assert.equal((await ctx.db.query('SELECT count(*)::int AS n FROM members WHERE loyalty_club_id = $1', [c.club.id])).rows[0].n, 0);
});

test('required properties and identifiers; ignore_required_properties skips the former only', async () => {
  const c = await clubWithDemoSchema(ctx);
  const noName = await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'a@example.com' } } });
  assert.deepEqual([noName.status, noName.body], [422, invalid({ properties: { first_name: [{ error: 'blank' }] } })]);
  const empty = await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'a@example.com', first_name: '' } } });
  assert.deepEqual(empty.body, invalid({ properties: { first_name: [{ error: 'blank' }] } }));
  const noIdentifier = await c.request('POST', `${c.base}/members`, { body: { properties: { first_name: 'A' } } });
  assert.deepEqual(noIdentifier.body, invalid({ properties: { email: [{ error: 'blank' }], msisdn: [{ error: 'blank' }] } }));
  const ignored = await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'a@example.com' }, ignore_required_properties: true } });
  assert.equal(ignored.status, 201);
  const stillNeedsIdentifier = await c.request('POST', `${c.base}/members`, { body: { properties: {}, ignore_required_properties: true } });
  assert.deepEqual(stillNeedsIdentifier.body, invalid({ properties: { email: [{ error: 'blank' }], msisdn: [{ error: 'blank' }] } }));
});

test('required consents must be given and accepted on create', async () => {
  const c = await ctx.newClub();
  const schema = demoMemberSchema(['en', 'no'], 'en');
  schema.required = [];
  schema.consents.terms = { version: '2', required: true, show_in_profile: false, show_at_registration: true };
  assert.equal((await c.request('PUT', `/v3/${c.club.slug}/schema`, { body: schema })).status, 200);
  const base = `/v3/${c.club.slug}`;
  const missing = await c.request('POST', `${base}/members`, { body: { properties: { email: 'a@example.com' } } });
  assert.deepEqual(missing.body, invalid({ consents: { terms: [{ error: 'blank' }] } }));
  const refused = await c.request('POST', `${base}/members`, { body: { properties: { email: 'a@example.com' }, consents: { terms: false } } });
  assert.deepEqual(refused.body, invalid({ consents: { terms: [{ error: 'accepted' }] } }));
  const ok = await c.request('POST', `${base}/members`, { body: { properties: { email: 'a@example.com' }, consents: { terms: { status: true, updated_at: '2024-01-02T03:04:05+01:00' } } } });
  assert.equal(ok.status, 201);
  assert.deepEqual(ok.body.consents, { terms: { status: true, updated_at: '2024-01-02T02:04:05.000Z' } });
});

test('validate_partially: a member that no longer fits a changed schema can still be updated', async () => {
  const c = await clubWithDemoSchema(ctx);
  const m = (await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'p@example.com', first_name: 'P', postal_code: '0150' } } })).body;
  // The club drops `postal_code` and starts requiring `last_name`.
  const schema = demoMemberSchema(['en', 'no'], 'en');
  delete (schema.properties as Record<string, unknown>).postal_code;
  schema.required = ['first_name', 'last_name'];
  assert.equal((await c.request('PUT', `${c.base}/schema`, { body: schema })).status, 200);

  const full = await c.request('PUT', `${c.base}/members/${m.id}`, { body: { properties: { gender: 'woman' } } });
  assert.deepEqual([full.status, full.body], [422, invalid({ properties: { postal_code: [{ error: 'not_permitted' }], last_name: [{ error: 'blank' }] } })]);
  const partial = await c.request('PUT', `${c.base}/members/${m.id}`, { body: { properties: { gender: 'woman' }, validate_partially: true } });
  assert.equal(partial.status, 200, JSON.stringify(partial.body));
  assert.deepEqual(partial.body.properties, { email: 'p@example.com', first_name: 'P', postal_code: '0150', gender: 'woman', language: 'en' });
  // Submitted attributes are still validated.
  const badPartial = await c.request('PUT', `${c.base}/members/${m.id}`, { body: { properties: { gender: 'robot' }, validate_partially: true } });
  assert.deepEqual(badPartial.body, invalid({ properties: { gender: [{ error: 'inclusion', options: { in: ['man', 'woman', 'other'] } }] } }));
  const stored = await ctx.db.query('SELECT properties FROM members WHERE id = $1', [m.id]);
  assert.equal(stored.rows[0].properties.gender, 'woman');
});
