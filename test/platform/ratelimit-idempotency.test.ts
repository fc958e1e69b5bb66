// Rate-limit headers and 429; Idempotency-Key replay, 409 and 422.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Type } from '@sinclair/typebox';
import { startTestApp } from '../helpers.ts';
import { api } from '../../src/platform/context.ts';
import { loadConfig } from '../../src/platform/config.ts';

let created = 0;
let releaseSlow: () => void = () => {};
const ctx = await startTestApp({
  config: {
    rateLimit: {
      general: { capacity: 1000, refillPerSecond: 1, enforce: false },
      reporting: { capacity: 3, refillPerSecond: 0.5, enforce: true },
    },
  },
  routes: (app) => {
    app.post('/v1/test/things', {
      config: api({ permit: 'Test:Things:Create', auth: 'Token', context: 'LoyaltyClub' }),
      schema: { body: Type.Object({ name: Type.String(), slow: Type.Optional(Type.Boolean()) }, { additionalProperties: false }) },
      handler: async (request, reply) => {
        if (request.body.slow) await new Promise<void>((r) => (releaseSlow = r));
        created += 1;
        return reply.status(201).send({ thing: { id: created, name: request.body.name } });
      },
    });
    app.get('/v1/test/report', {
      config: api({ permit: 'Test:Report', auth: 'Token', context: 'LoyaltyClub', bucket: 'reporting', cost: 2 }),
      schema: {},
      handler: async () => ({ ok: true }),
    });
  },
});
const c = await ctx.newClub();

test('every response carries the bucket, remaining tokens and cost', async () => {
  const first = await c.request('GET', '/v1/users');
  const bucket = first.headers.get('ratelimit-bucket');
  assert.match(bucket!, /^general:token-\d+$/);
  assert.equal(first.headers.get('ratelimit-cost'), '1');
  const second = await c.request('GET', '/v1/users');
  assert.equal(Number(second.headers.get('ratelimit-remaining')), Number(first.headers.get('ratelimit-remaining')) - 1);
  // Refused before authentication: still the headers, on the caller's address.
  const anonymous = await c.request('GET', '/v1/users', { token: null });
  assert.equal(anonymous.status, 401);
  assert.match(anonymous.headers.get('ratelimit-bucket')!, /^general:ip-/);
});

test('an enforced bucket answers 429 with Retry-After once empty; others only report', async () => {
  const statuses: number[] = [];
  let last;
  for (let i = 0; i < 3; i++) {
    last = await c.request('GET', '/v1/test/report');
    statuses.push(last.status);
  }
  assert.deepEqual(statuses, [200, 429, 429]);
  assert.equal(last!.headers.get('retry-after'), '2');
  assert.deepEqual(last!.body, { error: 'Rate limit exceeded' });
  assert.match(last!.headers.get('ratelimit-bucket')!, /^reporting:token-\d+$/);
  assert.equal(last!.headers.get('ratelimit-cost'), '2');
  // The general bucket is in reporting-only mode by default: remaining may go negative, no 429.
  assert.equal(loadConfig({}).rateLimit.general.enforce, false);
});

test('Idempotency-Key: same key and body replays the first response without running it again', async () => {
  const before = created;
  const headers = { 'Idempotency-Key': 'key-replay-1' };
  const first = await c.request('POST', '/v1/test/things', { body: { name: 'a' }, headers });
  const again = await c.request('POST', '/v1/test/things', { body: { name: 'a' }, headers });
  assert.equal(first.status, 201);
  assert.deepEqual([again.status, again.body], [201, first.body]);
  assert.equal(again.headers.get('idempotent-replayed'), 'true');
  assert.equal(created, before + 1);
  // Another token has its own key space.
  const other = await c.request('POST', '/v1/test/things', { body: { name: 'a' }, headers, token: await c.tokenWith(['Test:Things:Create']) });
  assert.notDeepEqual(other.body, first.body);
});

test('Idempotency-Key: the same key with another body is 422', async () => {
  const headers = { 'Idempotency-Key': 'key-other-body' };
  assert.equal((await c.request('POST', '/v1/test/things', { body: { name: 'a' }, headers })).status, 201);
  const res = await c.request('POST', '/v1/test/things', { body: { name: 'b' }, headers });
  assert.deepEqual([res.status, res.body], [422, { error: 'Invalid parameters', details: { idempotency_key: [{ error: 'already_used_with_other_parameters' }] } }]);
});

test('Idempotency-Key: a retry while the first request runs is 409', async () => {
  const headers = { 'Idempotency-Key': 'key-running' };
  const slow = c.request('POST', '/v1/test/things', { body: { name: 's', slow: true }, headers });
  await new Promise((r) => setTimeout(r, 150));
  const res = await c.request('POST', '/v1/test/things', { body: { name: 's', slow: true }, headers });
  assert.deepEqual([res.status, res.body], [409, { error: 'A request with this Idempotency-Key is in progress' }]);
  releaseSlow();
  assert.equal((await slow).status, 201);
  const replay = await c.request('POST', '/v1/test/things', { body: { name: 's', slow: true }, headers });
  assert.equal(replay.headers.get('idempotent-replayed'), 'true');
});

test('Idempotency-Key: a key older than 24 hours is forgotten', async () => {
  const headers = { 'Idempotency-Key': 'key-old' };
  const first = await c.request('POST', '/v1/test/things', { body: { name: 'o' }, headers });
  await ctx.db.query(`UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'key-old'`);
  const second = await c.request('POST', '/v1/test/things', { body: { name: 'o' }, headers });
  assert.equal(second.status, 201);
  assert.notDeepEqual(second.body, first.body);
  assert.equal(second.headers.get('idempotent-replayed'), null);
});
