// Loyalty clubs and products as MPC documents them: the clubs a token may see, the club model,
// and `filtered_member_properties` honoured on member reads and writes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp, PRODUCT } from '../helpers.ts';
import { createClientToken } from '../../src/platform/tokens.ts';
import { clubWithDemoSchema } from './members-helpers.ts';

const ctx = await startTestApp();

test('list, show and by_community_id: only the clubs the token may see, with the documented model', async () => {
  const a = await clubWithDemoSchema(ctx);
  const b = await clubWithDemoSchema(ctx);
  const hidden = await clubWithDemoSchema(ctx);
  const community = 700000 + a.club.id;
  await ctx.db.query(`UPDATE loyalty_clubs SET community_id = $2, customer_id = 42, country = 'SE', timezone = 'Europe/Stockholm', short_slug = 'a' WHERE id = $1`, [a.club.id, community]);
  await ctx.db.query(`UPDATE loyalty_clubs SET type = 'TENANTS' WHERE id = $1`, [b.club.id]);
  const permits = ['BL:Api:LoyaltyClubs:ListMine', 'BL:Api:LoyaltyClubs:Get'];
  const { token } = await createClientToken(ctx.db, { clubIds: [a.club.id, b.club.id], product: PRODUCT, permits });

  const list = await ctx.fetch('GET', '/v3/loyalty_clubs', { token });
  assert.equal(list.status, 200, JSON.stringify(list.body));
  const expectedA = {
    id: a.club.id, community_id: community, customer_id: 42, main_slug: a.club.slug, short_slug: 'a', other_slugs: [], name: a.club.name, type: 'REGULAR',
    country: 'SE', timezone: 'Europe/Stockholm', member_identifiers: ['email', 'msisdn'], new_offers_api_enabled: false,
  };
  assert.deepEqual(list.body.loyalty_clubs[0], expectedA);
  assert.deepEqual(list.body.loyalty_clubs.map((c: any) => c.main_slug), [a.club.slug, b.club.slug]);
  assert.deepEqual([list.body.pagination_info.total_count, list.body.pagination_info.per_page], [2, 1000]);
  assert.deepEqual((await ctx.fetch('GET', '/v3/loyalty_clubs?type=TENANTS', { token })).body.loyalty_clubs.map((c: any) => c.id), [b.club.id]);
  assert.deepEqual((await ctx.fetch('GET', '/v3/loyalty_clubs?customer_id=42', { token })).body.loyalty_clubs.map((c: any) => c.id), [a.club.id]);
  assert.equal((await ctx.fetch('GET', '/v3/loyalty_clubs?type=OTHER', { token })).status, 422);

  const shown = await ctx.fetch('GET', `/v3/loyalty_clubs/${a.club.slug}`, { token });
  assert.deepEqual([shown.status, shown.body], [200, expectedA]);
  assert.deepEqual((await ctx.fetch('GET', `/v3/loyalty_clubs/by_community_id/${community}`, { token })).body, expectedA);
  assert.equal((await ctx.fetch('GET', `/v3/loyalty_clubs/${hidden.club.slug}`, { token })).status, 401);
  await ctx.db.query('UPDATE loyalty_clubs SET community_id = $2 WHERE id = $1', [hidden.club.id, community + 1]);
  assert.deepEqual((await ctx.fetch('GET', `/v3/loyalty_clubs/by_community_id/${community + 1}`, { token })).body, { error: 'Loyalty club not found' });

  const { token: all } = await createClientToken(ctx.db, { allClubs: true, product: PRODUCT, permits });
  const everything = (await ctx.fetch('GET', '/v3/loyalty_clubs?per_page=1000', { token: all })).body;
  assert.ok(everything.loyalty_clubs.some((c: any) => c.id === hidden.club.id));
});

test('products: the registry, and filtered_member_properties on member reads and writes', async () => {
  const c = await clubWithDemoSchema(ctx);
  await ctx.db.query(
    `INSERT INTO products (loyalty_club_id, name, slug, filtered_member_properties, subproducts, is_webform)
     VALUES ($1, 'kiosk', 'kiosk', '{email,first_name}', '{lobby}', true), ($1, $2, 'suite', '{}', '{}', false)`,
    [c.club.id, PRODUCT],
  );
  const products = await c.request('GET', `${c.base}/products`);
  assert.deepEqual([products.status, products.body], [200, [
    { name: 'kiosk', slug: 'kiosk', filtered_member_properties: ['email', 'first_name'], subproducts: ['lobby'], is_webform: true },
    { name: PRODUCT, slug: 'suite', filtered_member_properties: [], subproducts: [], is_webform: false },
  ]]);

  const m = (await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'kiosk@example.com', first_name: 'K', last_name: 'Secret', msisdn: '4740001111' } } })).body;
  const kiosk = { token: await c.tokenWith(ctx.permits, 'kiosk'), headers: { 'X-Product-Name': 'kiosk' } };
  const seen = await c.request('GET', `${c.base}/members/${m.id}`, kiosk);
  assert.deepEqual(seen.body.properties, { email: 'kiosk@example.com', first_name: 'K' });
  assert.deepEqual((await c.request('GET', `${c.base}/members?ids[]=${m.id}`, kiosk)).body.members[0].properties, { email: 'kiosk@example.com', first_name: 'K' });
  const refused = await c.request('PUT', `${c.base}/members/${m.id}`, { ...kiosk, body: { properties: { last_name: 'Changed', first_name: 'Kay' } } });
  assert.deepEqual([refused.status, refused.body], [422, { error: 'Invalid parameters', details: { properties: { last_name: [{ error: 'not_permitted' }] } } }]);
  const ok = await c.request('PUT', `${c.base}/members/${m.id}`, { ...kiosk, body: { properties: { first_name: 'Kay' } } });
  assert.deepEqual([ok.status, ok.body.properties], [200, { email: 'kiosk@example.com', first_name: 'Kay' }]);
  // The unfiltered product still sees everything, and nothing else was touched.
  assert.deepEqual((await c.request('GET', `${c.base}/members/${m.id}`)).body.properties, { email: 'kiosk@example.com', first_name: 'Kay', last_name: 'Secret', msisdn: '4740001111', language: 'en' });
});
