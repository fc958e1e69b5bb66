// Global headers (470/471), client and user tokens (401), permits (403), in the documented order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp } from '../helpers.ts';
import { parseCustomer, resolveLocale } from '../../src/platform/headers.ts';

const ctx = await startTestApp();
const a = await ctx.newClub();
const b = await ctx.newClub();

test('missing X-User-Agent or X-Product-Name is 470 naming the header', async () => {
  let res = await a.request('GET', '/v1/users', { headers: { 'X-User-Agent': undefined } });
  assert.equal(res.status, 470);
  assert.deepEqual(res.body, { error: 'Missing required header: X-User-Agent' });
  res = await a.request('GET', '/v1/users', { headers: { 'X-Product-Name': undefined } });
  assert.equal(res.status, 470);
  assert.deepEqual(res.body, { error: 'Missing required header: X-Product-Name' });
  res = await a.request('GET', '/v1/users', { slug: null });
  assert.equal(res.status, 470);
  assert.deepEqual(res.body, { error: 'Missing required header: X-Loyalty-Club-Slug' });
});

test('malformed headers are 471 naming the header', async () => {
  const cases: Array<[string, string]> = [
    ['X-Product-Name', 'has spaces'],
    ['X-Loyalty-Club-Slug', 'Not_A_Slug'],
    ['X-Locale', 'english please'],
    ['X-Customer', 'chain=Cats;;'],
    ['X-Customer', 'id=12a'],
  ];
  for (const [name, value] of cases) {
    const res = await a.request('GET', '/v1/users', { headers: { [name]: value } });
    assert.equal(res.status, 471, `${name}: ${value}`);
    assert.deepEqual(res.body, { error: `Invalid header value: ${name}` });
  }
});

test('headers are checked before the token: a bad header with no token is still 470', async () => {
  const res = await a.request('GET', '/v1/users', { token: null, headers: { 'X-User-Agent': undefined } });
  assert.equal(res.status, 470);
});

test('X-Customer accepts every documented form', async () => {
  for (const value of ['1000941', '1000941_1000942', 'id=1000941', 'id=1_2_3', 'all=all', 'chain=Cats', 'chain=Cats;country=PL']) {
    const res = await a.request('GET', '/v1/users', { headers: { 'X-Customer': value } });
    assert.equal(res.status, 200, value);
  }
  assert.deepEqual(parseCustomer('1000941_1000942'), { kind: 'ids', ids: [1000941, 1000942] });
  assert.deepEqual(parseCustomer('id=7'), { kind: 'ids', ids: [7] });
  assert.deepEqual(parseCustomer('all=all'), { kind: 'all' });
  assert.deepEqual(parseCustomer('chain=Cats;country=PL'), { kind: 'filter', filters: { chain: 'Cats', country: 'PL' } });
  assert.equal(parseCustomer('chain='), null);
});

test('X-Locale resolves against the club languages, falling back to the default', async () => {
  const locale = async (value?: string) => (await a.request('GET', '/v1/users', { headers: { 'X-Locale': value } })).headers.get('content-language');
  assert.equal(await locale(undefined), 'en');
  assert.equal(await locale('no'), 'no');
  assert.equal(await locale('NO'), 'no');
  assert.equal(await locale('no-NO'), 'no');
  assert.equal(await locale('es-ES'), 'en');
  assert.equal(resolveLocale('es-es', ['en', 'es-ES'], 'en'), 'es-ES');
});

test('client token: missing, invalid, other club, other product → 401', async () => {
  let res = await a.request('GET', '/v1/users', { token: null });
  assert.equal(res.status, 401);
  assert.deepEqual(res.body, { error: 'Missing client token (X-Client-Authorization)' });
  res = await a.request('GET', '/v1/users', { token: 'not-a-token' });
  assert.deepEqual([res.status, res.body], [401, { error: 'Invalid client token' }]);
  res = await a.request('GET', '/v1/users', { slug: b.club.slug });
  assert.deepEqual([res.status, res.body], [401, { error: 'Client token does not match the loyalty club' }]);
  res = await a.request('GET', '/v1/users', { slug: 'no-such-club' });
  assert.deepEqual([res.status, res.body], [401, { error: 'Client token does not match the loyalty club' }]);
  res = await a.request('GET', '/v1/users', { headers: { 'X-Product-Name': 'another-product' } });
  assert.deepEqual([res.status, res.body], [401, { error: 'Client token does not match X-Product-Name' }]);
});

test('a revoked token is refused', async () => {
  const token = await a.tokenWith(['Users:Api:Users:Index']);
  assert.equal((await a.request('GET', '/v1/users', { token })).status, 200);
  await ctx.db.query(`UPDATE client_tokens SET revoked_at = now() WHERE token_prefix = $1`, [token.slice(0, 6)]);
  assert.equal((await a.request('GET', '/v1/users', { token })).status, 401);
});

test('a token without the permit is 403 naming the permit', async () => {
  const token = await a.tokenWith(['Something:Else']);
  const res = await a.request('GET', '/v1/users', { token });
  assert.equal(res.status, 403);
  assert.deepEqual(res.body, { error: 'Not authorized: permit Users:Api:Users:Index required' });
});

test('user tokens: invalid or of another club → 401; permits are client ∩ role', async () => {
  let res = await a.request('GET', '/v1/users', { headers: { Authorization: 'Bearer nope' } });
  assert.deepEqual([res.status, res.body], [401, { error: 'Invalid user token' }]);
  res = await a.request('GET', '/v1/users', { headers: { Authorization: 'Basic abc' } });
  assert.equal(res.status, 401);
  const otherClubUser = await b.userToken(['Users:Api:Users:Index']);
  res = await a.request('GET', '/v1/users', { headers: { Authorization: `Bearer ${otherClubUser}` } });
  assert.equal(res.status, 401);

  const allowed = await a.userToken(['Users:Api:Users:Index']);
  res = await a.request('GET', '/v1/users', { headers: { Authorization: `Bearer ${allowed}` } });
  assert.equal(res.status, 200);
  assert.ok(res.body.users.length >= 1);

  // The role lacks the permit although the client token has it.
  const denied = await a.userToken(['Other:Permit']);
  res = await a.request('GET', '/v1/users', { headers: { Authorization: `Bearer ${denied}` } });
  assert.equal(res.status, 403);

  // The role has it but the client token does not.
  const narrowClient = await a.tokenWith(['Other:Permit']);
  res = await a.request('GET', '/v1/users', { token: narrowClient, headers: { Authorization: `Bearer ${allowed}` } });
  assert.equal(res.status, 403);
});

test('order of checks: a missing permit is reported before invalid query parameters', async () => {
  const token = await a.tokenWith(['Something:Else']);
  const res = await a.request('GET', '/v1/users?per_page=100000', { token });
  assert.equal(res.status, 403);
});
