// Error shapes: 400 with an empty body, the 422 tree, 404, 405, and opaque 500s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { Type } from '@sinclair/typebox';
import { startTestApp } from '../helpers.ts';
import { api } from '../../src/platform/context.ts';
import { StringEnum } from '../../src/platform/schema.ts';
import { Violations } from '../../src/platform/errors.ts';

const logLines: string[] = [];
const logStream = new Writable({
  write(chunk, _enc, done) {
    logLines.push(String(chunk));
    done();
  },
});

const Member = Type.Object(
  {
    first_name: Type.String({ minLength: 2, maxLength: 10, pattern: '^[A-Z][a-z]+$' }),
    msisdns: Type.Array(Type.String({ minLength: 1, format: 'msisdn' })),
    gender: Type.Optional(StringEnum(['man', 'woman', 'other'])),
    age: Type.Optional(Type.Integer({ minimum: 0 })),
    address: Type.Optional(Type.Object({ city: Type.String(), zip: Type.String({ maxLength: 4 }) }, { additionalProperties: false })),
  },
  { additionalProperties: false },
);

const ctx = await startTestApp({
  logger: { level: 'error', stream: logStream },
  routes: (app) => {
    app.post('/v1/test/members', {
      config: api({ permit: 'Test:Members:Create', auth: 'Token', context: 'LoyaltyClub' }),
      schema: { body: Type.Object({ member: Member }, { additionalProperties: false }) },
      handler: async (request) => {
        const v = new Violations();
        if (request.body.member.first_name === 'Taken') v.add(['member', 'first_name'], 'taken');
        if (request.body.member.first_name === 'Base') v.add([], 'something_is_wrong');
        v.throwIfAny();
        return { ok: true };
      },
    });
    app.get('/v1/test/boom', {
      config: api({ permit: 'Test:Boom', auth: 'Token', context: 'LoyaltyClub' }),
      schema: {},
      handler: async () => {
        throw new Error('secret database detail at /srv/app.ts:42');
      },
    });
  },
});
const c = await ctx.newClub();

test('unparsable JSON is 400 with an empty body', async () => {
  const res = await c.request('POST', '/v1/test/members', { raw: '{"member": {' });
  assert.equal(res.status, 400);
  assert.equal(res.text, '');
});

test('the 422 tree mirrors the payload: nested objects, array indexes as keys, MPC error keys', async () => {
  const res = await c.request('POST', '/v1/test/members', {
    body: {
      member: { first_name: 's', msisdns: ['123', '4740769126', ''], gender: 'x', age: -1, address: { city: 'Oslo', zip: '12345', extra: 1 }, nickname: 'y' },
    },
  });
  assert.equal(res.status, 422);
  assert.deepEqual(res.body, {
    error: 'Invalid parameters',
    details: {
      member: {
        first_name: [
          { error: 'too_short', options: { min_length: 2 } },
          { error: 'invalid_format', options: { format: '/^[A-Z][a-z]+$/' } },
        ],
        msisdns: { '0': [{ error: 'invalid_msisdn' }], '2': [{ error: 'blank' }] },
        gender: [{ error: 'inclusion', options: { in: ['man', 'woman', 'other'] } }],
        age: [{ error: 'greater_or_equal_to', options: { number: 0 } }],
        address: { zip: [{ error: 'too_long', options: { max_length: 4 } }], extra: [{ error: 'not_permitted' }] },
        nickname: [{ error: 'not_permitted' }],
      },
    },
  });
});

test('missing keys are blank, wrong types are invalid', async () => {
  let res = await c.request('POST', '/v1/test/members', { body: { member: { first_name: 'Ola' } } });
  assert.equal(res.status, 422);
  assert.deepEqual(res.body.details, { member: { msisdns: [{ error: 'blank' }] } });
  res = await c.request('POST', '/v1/test/members', { body: { member: { first_name: 'Ola', msisdns: 'nope' } } });
  assert.deepEqual(res.body.details, { member: { msisdns: [{ error: 'must_be_an_array' }] } });
});

test('violations found by a handler use the same tree, base for object-level errors', async () => {
  let res = await c.request('POST', '/v1/test/members', { body: { member: { first_name: 'Taken', msisdns: [] } } });
  assert.deepEqual([res.status, res.body], [422, { error: 'Invalid parameters', details: { member: { first_name: [{ error: 'taken' }] } } }]);
  res = await c.request('POST', '/v1/test/members', { body: { member: { first_name: 'Base', msisdns: [] } } });
  assert.deepEqual(res.body, { error: 'Invalid parameters', details: { base: [{ error: 'something_is_wrong' }] } });
  res = await c.request('POST', '/v1/test/members', { body: { member: { first_name: 'Fine', msisdns: ['4740769126'] } } });
  assert.deepEqual([res.status, res.body], [200, { ok: true }]);
});

test('unknown route 404, unsupported method 405, both in the error shape', async () => {
  let res = await c.request('GET', '/v1/nothing/here');
  assert.deepEqual([res.status, res.body], [404, { error: 'Not found' }]);
  res = await c.request('DELETE', '/v1/users');
  assert.deepEqual([res.status, res.body], [405, { error: 'Method DELETE not allowed on /v1/users' }]);
  // The short-link route (`GET /:code`) does not turn every one-segment path into a 405.
  res = await c.request('POST', '/anything');
  assert.deepEqual([res.status, res.body], [404, { error: 'Not found' }]);
});

test('an unexpected failure is a bare 500; the log has the error with the request id', async () => {
  const res = await c.request('GET', '/v1/test/boom', { headers: { 'X-Request-Id': 'req-boom-1' } });
  assert.equal(res.status, 500);
  assert.deepEqual(res.body, { error: 'Internal server error' });
  assert.equal(res.headers.get('x-request-id'), 'req-boom-1');
  assert.ok(!res.text.includes('secret'));
  const line = logLines.map((l) => JSON.parse(l)).find((l) => l.reqId === 'req-boom-1' && l.level >= 50);
  assert.ok(line, 'a log line at error level carries the request id');
  assert.match(JSON.stringify(line.err), /secret database detail/);
});

test('a non-JSON content type is refused with the error shape', async () => {
  const res = await c.request('POST', '/v1/test/members', { raw: 'a=1', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
  assert.equal(res.status, 415);
  assert.deepEqual(res.body, { error: 'Unsupported Content-Type: send application/json' });
});
