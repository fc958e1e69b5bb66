// Tokens as MPC scopes them: a client token bound to several clubs (or all) and to one product (or
// any); a user bearer alone on UserToken routes (role permits, the user's club, per-user rate-limit
// bucket and idempotency scope).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp, PRODUCT } from '../helpers.ts';
import { createClientToken } from '../../src/platform/tokens.ts';

const ctx = await startTestApp();
const [a, b, c] = [await ctx.newClub(), await ctx.newClub(), await ctx.newClub()];
const members = (slug: string) => `/v3/${slug}/members`;

test('a token for two clubs works on both and is refused on a third', async () => {
  const { token } = await createClientToken(ctx.db, { clubIds: [a.club.id, b.club.id], product: PRODUCT, permits: ['BL:Api:Members:Index', 'BL:Api:Members:Create'] });
  const created = await ctx.fetch('POST', members(a.club.slug), { token, body: { properties: { email: 'two-clubs@example.com' } } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  for (const club of [a, b]) {
    const r = await ctx.fetch('GET', members(club.club.slug), { token });
    assert.equal(r.status, 200, club.club.slug);
    // Each club sees only its own members.
    assert.deepEqual(r.body.members.map((m: any) => m.properties.email), club === a ? ['two-clubs@example.com'] : []);
  }
  const third = await ctx.fetch('GET', members(c.club.slug), { token });
  assert.deepEqual([third.status, third.body], [401, { error: 'Client token does not match the loyalty club' }]);
  // Header-context routes too.
  assert.equal((await ctx.fetch('GET', '/v1/audiences', { token, slug: b.club.slug })).status, 403, 'club accepted, permit missing');
  assert.equal((await ctx.fetch('GET', '/v1/audiences', { token, slug: c.club.slug })).status, 401);
});

test('an all-clubs token and an any-product token', async () => {
  const { token: all } = await createClientToken(ctx.db, { allClubs: true, product: PRODUCT, permits: ['BL:Api:Members:Index'] });
  for (const club of [a, b, c]) assert.equal((await ctx.fetch('GET', members(club.club.slug), { token: all })).status, 200);
  assert.deepEqual((await ctx.fetch('GET', members('no-such-club'), { token: all })).body, { error: 'Client token does not match the loyalty club' });
  assert.equal((await ctx.fetch('GET', members(a.club.slug), { token: all, headers: { 'X-Product-Name': 'kiosk' } })).status, 401);

  const { token: anyProduct } = await createClientToken(ctx.db, { clubId: a.club.id, product: null, permits: ['BL:Api:Members:Index'] });
  for (const product of ['kiosk', 'backoffice', PRODUCT]) {
    assert.equal((await ctx.fetch('GET', members(a.club.slug), { token: anyProduct, headers: { 'X-Product-Name': product } })).status, 200, product);
  }
  assert.equal((await ctx.fetch('GET', members(b.club.slug), { token: anyProduct })).status, 401);
});

test('a user bearer alone opens UserToken routes: role permits, the user club, per-user bucket and idempotency', async () => {
  const user = await a.userToken(['BL:Api:Members:Create', 'Users:Api:Users:Index']);
  const bearer = { Authorization: `Bearer ${user}` };
  // The club comes from the path, or from the user when the route takes it from a header.
  const created = await ctx.fetch('POST', members(a.club.slug), { token: null, headers: { ...bearer, 'Idempotency-Key': 'user-key-1' }, body: { properties: { email: 'by-user@example.com' } } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.match(created.headers.get('ratelimit-bucket')!, /^general:user-/);
  const replay = await ctx.fetch('POST', members(a.club.slug), { token: null, headers: { ...bearer, 'Idempotency-Key': 'user-key-1' }, body: { properties: { email: 'by-user@example.com' } } });
  assert.deepEqual([replay.status, replay.headers.get('idempotent-replayed'), replay.body], [201, 'true', created.body]);
  const users = await ctx.fetch('GET', '/v1/users', { token: null, headers: bearer });
  assert.equal(users.status, 200);
  assert.ok(users.body.users.length >= 1);

  // Permits are the role's; another club's path is refused; Token-only routes still need a client token.
  assert.equal((await ctx.fetch('DELETE', `${members(a.club.slug)}/${created.body.id}`, { token: null, headers: bearer })).status, 403);
  assert.deepEqual((await ctx.fetch('POST', members(b.club.slug), { token: null, headers: bearer, body: { properties: {} } })).body, { error: 'Invalid user token' });
  assert.deepEqual((await ctx.fetch('GET', members(a.club.slug), { token: null, headers: bearer })).body, { error: 'Missing client token (X-Client-Authorization)' });
  assert.equal((await ctx.fetch('POST', members(a.club.slug), { token: null, headers: { Authorization: 'Bearer nope' }, body: { properties: {} } })).status, 401);

  // With a client token as well: the intersection, as before.
  const narrow = await a.tokenWith(['Users:Api:Users:Index']);
  assert.equal((await ctx.fetch('POST', members(a.club.slug), { token: narrow, headers: bearer, body: { properties: { email: 'x@example.com' } } })).status, 403);
  // A multi-club client token with a user of one of its clubs.
  const { token: ab } = await createClientToken(ctx.db, { clubIds: [a.club.id, b.club.id], product: PRODUCT, permits: ['Users:Api:Users:Index'] });
  assert.equal((await ctx.fetch('GET', '/v1/users', { token: ab, slug: a.club.slug, headers: bearer })).status, 200);
  assert.equal((await ctx.fetch('GET', '/v1/users', { token: ab, slug: b.club.slug, headers: bearer })).status, 401);
});
