// Members imports: the API, the bulk state machine, per-member errors, crash and retry without
// duplicates, lease expiry, the 24 h purge and the NDJSON file path used by the CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { briefLeaves, startTestApp } from '../helpers.ts';
import { clubWithDemoSchema } from './members-helpers.ts';
import { claimBulk, processBulk, purgeImportPersonalData, runImportWork } from '../../src/members/imports.ts';
import { importMembersFile } from '../../src/members/import-file.ts';

const ctx = await startTestApp();
const invalid = (details: unknown) => ({ error: 'Invalid parameters', details });
const count = async (clubId: number) => (await ctx.db.query('SELECT count(*)::int AS n FROM members WHERE loyalty_club_id = $1', [clubId])).rows[0].n;

/** Runs the worker until no bulk of the club is due (other test files share a PostgreSQL database). */
async function drain(clubId: number) {
  while (await runImportWork(ctx.db, { clubId })) {
    // next bulk
  }
}

test('create import upserts by e-mail / MSISDN: states, counters, per-member errors, opt-in channel, created_at', async () => {
  const c = await clubWithDemoSchema(ctx);
  const e = (await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'existing@example.com', first_name: 'E' } } })).body;
  await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'f@example.com', msisdn: '4740000099', first_name: 'F' } } });
  await c.request('POST', `${c.base}/members`, { body: { properties: { msisdn: '4740000097', first_name: 'G' } } });
  const members = [
    {
      properties: { email: 'ok1@example.com', msisdn: '+47 400 00 001', first_name: 'One' }, consents: { sms_marketing: true }, sms_enabled: false,
      created_at: '2020-01-02T03:04:05Z', updated_at: '2021-01-01T00:00:00Z', person_id: 7,
    },
    { properties: { email: 'not-an-email', first_name: 'Bad' } },
    { properties: { email: 'ok2@example.com', first_name: 'Two', shoe_size: 44 } },
    { properties: { email: 'EXISTING@example.com', first_name: 'Updated' }, optin_channel: 'shop', created_at: '2001-01-01T00:00:00Z' },
    'not an object',
    { properties: { msisdn: '4740000003', first_name: 'Three' }, optin_channel: 'shop', optin_subchannel: 'counter', colour: 'red' },
    { properties: { msisdn: '4740000004', first_name: 'Four' }, optin_channel: 'shop', password: 'p4ssw0rd', favorite_stores: [9] },
    // e-mail of F, MSISDN of G: two different members
    { properties: { email: 'f@example.com', msisdn: '4740000097', first_name: 'Both' } },
    { properties: { email: 'ok5@example.com', first_name: 'Five' }, created_at: 'yesterday' },
  ];
  const res = await c.request('POST', `${c.base}/members/imports`, { body: { import_id: 'spring-2026', request_number: 1, members } });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  assert.deepEqual({ ...res.body, id: 0, created_at: '' }, {
    id: 0, import_id: 'spring-2026', request_number: 1, operation: 'create', member_identifier_type: 'id', status: 'waiting',
    members_in_payload_number: 9, members_created_number: 0, members_updated_number: 0, members_with_validation_errors_number: 0,
    retries: 0, members_errors: {}, created_at: '', finished_at: null,
  });
  assert.equal(await count(c.club.id), 3);
  await drain(c.club.id);
  const bulk = await c.request('GET', `${c.base}/members/imports/spring-2026/bulks/${res.body.id}`);
  assert.equal(bulk.status, 200);
  assert.equal(bulk.body.status, 'finished');
  assert.deepEqual(
    [bulk.body.members_created_number, bulk.body.members_updated_number, bulk.body.members_with_validation_errors_number, bulk.body.retries],
    [2, 1, 6, 0],
  );
  const [f, g] = (await ctx.db.query("SELECT id FROM members WHERE loyalty_club_id = $1 AND (email = 'f@example.com' OR msisdn = '4740000097') ORDER BY id", [c.club.id])).rows.map((r) => Number(r.id));
  assert.deepEqual(briefLeaves(bulk.body.members_errors), {
    'not-an-email': { properties: { email: [{ error: 'invalid_format', options: { format: 'email' } }] } },
    'ok2@example.com': { properties: { shoe_size: [{ error: 'not_permitted' }] } },
    '#4': { base: [{ error: 'must_be_an_object' }] },
    '4740000003': { colour: [{ error: 'not_permitted' }] },
    'f@example.com': { properties: [{ error: 'identifiers_of_different_members', options: { member_ids: [f, g] } }] },
    'ok5@example.com': { created_at: [{ error: 'invalid_iso_8601_time' }] },
  });
  const { rows } = await ctx.db.query(
    `SELECT email, msisdn, sms_status, optin_channel, optin_subchannel, password_hash IS NOT NULL AS has_password, to_jsonb(favorite_stores) AS stores, created_at
       FROM members WHERE loyalty_club_id = $1 AND optin_channel <> 'test-suite' ORDER BY id`,
    [c.club.id],
  );
  // created_at of an item is the member's registration time; updated_at and person_id are ignored.
  assert.deepEqual(rows.map(({ created_at, ...r }) => r), [
    { email: 'ok1@example.com', msisdn: '4740000001', sms_status: 'disabled', optin_channel: 'import', optin_subchannel: 'spring-2026', has_password: false, stores: [] },
    { email: null, msisdn: '4740000004', sms_status: 'enabled', optin_channel: 'shop', optin_subchannel: 'spring-2026', has_password: true, stores: [9] },
  ]);
  assert.equal(new Date(rows[0].created_at).toISOString(), '2020-01-02T03:04:05.000Z');
  // The existing member was updated in place: same id, opt-in and registration time untouched.
  const eNow = (await c.request('GET', `${c.base}/members/${e.id}`)).body;
  assert.deepEqual([eNow.properties.first_name, eNow.optin_channel, eNow.created_at, eNow.person_id], ['Updated', 'test-suite', e.created_at, e.person_id]);

  const overview = await c.request('GET', `${c.base}/members/imports/spring-2026`);
  assert.equal(overview.status, 200);
  assert.deepEqual({ ...overview.body, created_at: '', bulks: overview.body.bulks.length }, {
    import_id: 'spring-2026', status: 'finished', bulks_number: 1, members_in_payload_number: 9, members_created_number: 2,
    members_updated_number: 1, members_with_validation_errors_number: 6, created_at: '', bulks: 1,
  });
  assert.equal('members_errors' in overview.body.bulks[0], false);
  const byNumber = await c.request('GET', `${c.base}/members/imports/spring-2026/bulks/by_request_number/1`);
  assert.deepEqual([byNumber.status, byNumber.body], [200, bulk.body]);
  assert.equal((await c.request('GET', `${c.base}/members/imports/spring-2026/bulks/by_request_number/2`)).status, 404);
  assert.equal((await c.request('GET', `${c.base}/members/imports/nope`)).status, 404);
  assert.equal((await c.request('GET', `${c.base}/members/imports/spring-2026/bulks/999999999`)).status, 404);
});

test('request-level refusals answer {"error": reason}; a bulk sent again answers the stored one', async () => {
  const c = await clubWithDemoSchema(ctx);
  const big = Array.from({ length: 1001 }, (_, i) => ({ properties: { email: `u${i}@example.com`, first_name: 'U' } }));
  const one = [{ properties: { email: 'one@example.com', first_name: 'O' } }];
  const cases: Array<[unknown, string]> = [
    [{ members: one, operation: 'upsert' }, 'invalid_operation'],
    [{ members: one, member_identifier_type: 'phone' }, 'invalid_member_identifier_type'],
    [{ members: one, operation: 'update', member_identifier_type: 'msisdn' }, 'missing_identifier'],
    [{ members: [] }, 'members_empty'],
    [{}, 'members_empty'],
    [{ members: big }, 'members_size_incorrect'],
    [{ members: [{ properties: { first_name: 'No identifier' } }] }, 'missing_identifier'],
    [{ members: [{ properties: { email: 'x@example.com' } }], operation: 'update' }, 'missing_identifier'],
    [{ members: [{ properties: { email: 'a@example.com' } }, { properties: { email: ' A@Example.com' } }] }, 'duplicated_emails'],
    [{ members: [{ properties: { msisdn: '+47 400 00 001' } }, { properties: { msisdn: '4740000001' } }] }, 'duplicated_msisdns'],
  ];
  for (const [body, reason] of cases) {
    const r = await c.request('POST', `${c.base}/members/imports`, { body });
    assert.deepEqual([r.status, r.body], [422, { error: reason }], JSON.stringify(body).slice(0, 80));
  }
  // A club whose schema identifies members by e-mail only: msisdn is no identifier type there.
  await ctx.db.query(`UPDATE loyalty_clubs SET member_schema = jsonb_set(member_schema, '{identifiers}', '["email"]') WHERE id = $1`, [c.club.id]);
  const notIdentifier = await c.request('POST', `${c.base}/members/imports`, { body: { members: one, operation: 'update', member_identifier_type: 'msisdn' } });
  assert.deepEqual([notIdentifier.status, notIdentifier.body], [422, { error: 'invalid_member_identifier_type' }]);

  // request_number without import_id means nothing: accepted, not stored.
  const loose = await c.request('POST', `${c.base}/members/imports`, { body: { request_number: 3, members: one } });
  assert.deepEqual([loose.status, loose.body.request_number], [201, null]);
  // A retry after a timeout (same import_id, request_number, body) answers the stored bulk.
  const first = await c.request('POST', `${c.base}/members/imports`, { body: { import_id: 'x', request_number: 1, members: one } });
  assert.equal(first.status, 201);
  const retry = await c.request('POST', `${c.base}/members/imports`, { body: { import_id: 'x', request_number: 1, members: one } });
  assert.deepEqual([retry.status, retry.body], [200, first.body]);
  const reused = await c.request('POST', `${c.base}/members/imports`, { body: { import_id: 'x', request_number: 1, members: [{ properties: { email: 'two@example.com' } }] } });
  assert.deepEqual([reused.status, reused.body], [422, invalid({ request_number: [{ error: 'taken' }] })]);
  assert.equal((await ctx.db.query('SELECT count(*)::int AS n FROM members_import_bulks WHERE loyalty_club_id = $1', [c.club.id])).rows[0].n, 2);
});

test('update import by email, msisdn and id; append mode; unknown targets and clashes are per-member errors', async () => {
  const c = await clubWithDemoSchema(ctx);
  const a = (await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'a@example.com', msisdn: '4740000101', first_name: 'A', interests: ['kids'] } } })).body;
  const b = (await c.request('POST', `${c.base}/members`, { body: { properties: { email: 'b@example.com', msisdn: '4740000102', first_name: 'B' } } })).body;

  const byEmail = await c.request('POST', `${c.base}/members/imports`, {
    body: {
      operation: 'update', member_identifier_type: 'email', multi_values_update_mode: 'append',
      members: [
        { properties: { email: 'A@example.com', interests: ['fashion', 'kids'], last_name: 'Alpha' }, consents: { email_marketing: true } },
        { properties: { email: 'nobody@example.com', first_name: 'N' } },
        { properties: { email: 'b@example.com', msisdn: '4740000101' } },
      ],
    },
  });
  assert.equal(byEmail.status, 201);
  await drain(c.club.id);
  const bulk = (await c.request('GET', `${c.base}/members/imports/${byEmail.body.import_id}/bulks/${byEmail.body.id}`)).body;
  assert.deepEqual([bulk.status, bulk.members_updated_number, bulk.members_with_validation_errors_number], ['finished', 1, 2]);
  assert.deepEqual(briefLeaves(bulk.members_errors), {
    'nobody@example.com': { properties: { email: [{ error: 'does_not_exist' }] } },
    'b@example.com': { properties: { msisdn: [{ error: 'taken' }] } },
  });
  const aNow = (await c.request('GET', `${c.base}/members/${a.id}`)).body;
  assert.deepEqual(aNow.properties, { email: 'a@example.com', msisdn: '4740000101', first_name: 'A', last_name: 'Alpha', interests: ['kids', 'fashion'], language: 'en' });
  assert.equal(aNow.consents.email_marketing.status, true);
  assert.equal(aNow.optin_channel, 'test-suite');

  const byId = await c.request('POST', `${c.base}/members/imports`, {
    body: { operation: 'update', member_identifier_type: 'id', members: [{ id: b.id, properties: { interests: ['beauty'] }, push_enabled: false }, { id: 999999999, properties: {} }, { id: b.id, properties: {} }] },
  });
  const byMsisdn = await c.request('POST', `${c.base}/members/imports`, {
    body: { operation: 'update', member_identifier_type: 'msisdn', members: [{ properties: { msisdn: '+47 400 00 101', gender: 'woman' } }, { properties: { msisdn: '12' } }] },
  });
  await drain(c.club.id);
  const idBulk = (await c.request('GET', `${c.base}/members/imports/${byId.body.import_id}/bulks/${byId.body.id}`)).body;
  assert.deepEqual([idBulk.members_updated_number, briefLeaves(idBulk.members_errors)], [1, { '999999999': { id: [{ error: 'does_not_exist' }] }, [String(b.id)]: { id: [{ error: 'duplicated_in_import' }] } }]);
  const msisdnBulk = (await c.request('GET', `${c.base}/members/imports/${byMsisdn.body.import_id}/bulks/${byMsisdn.body.id}`)).body;
  assert.deepEqual([msisdnBulk.members_updated_number, briefLeaves(msisdnBulk.members_errors)], [1, { '12': { properties: { msisdn: [{ error: 'invalid_msisdn' }] } } }]);
  const bNow = (await c.request('GET', `${c.base}/members/${b.id}`)).body;
  assert.deepEqual([bNow.properties.interests, bNow.push_status], [['beauty'], 'disabled']);
  assert.equal((await c.request('GET', `${c.base}/members/${a.id}`)).body.properties.gender, 'woman');
});

test('a crash mid-bulk rolls the bulk back; the retry creates every member exactly once', async () => {
  const c = await clubWithDemoSchema(ctx);
  const members = Array.from({ length: 50 }, (_, i) => ({ properties: { email: `crash${i}@example.com`, first_name: `C${i}` } }));
  const submitted = (await c.request('POST', `${c.base}/members/imports`, { body: { members } })).body;

  const claimed = await claimBulk(ctx.db, { bulkId: submitted.id });
  assert.ok(claimed);
  assert.equal(await claimBulk(ctx.db, { bulkId: submitted.id }), null, 'a working bulk is not claimed twice');
  let written = -1;
  const outcome = await processBulk(ctx.db, claimed!, {
    afterWrite: (n) => {
      written = n;
      throw new Error('worker crashed');
    },
  });
  assert.equal(written, 50, 'the failure came after the members were written');
  assert.equal(outcome.status, 'waiting_for_retry');
  assert.equal(await count(c.club.id), 0);
  const { rows } = await ctx.db.query('SELECT status, retries, last_error, retry_at > now() AS later, lease_token FROM members_import_bulks WHERE id = $1', [submitted.id]);
  assert.deepEqual(rows[0], { status: 'waiting_for_retry', retries: 1, last_error: 'worker crashed', later: true, lease_token: null });
  const shown = (await c.request('GET', `${c.base}/members/imports/${submitted.import_id}/bulks/${submitted.id}`)).body;
  assert.deepEqual([shown.status, shown.retries], ['waiting_for_retry', 1]);

  // Not due yet: the worker leaves it alone.
  assert.equal(await claimBulk(ctx.db, { bulkId: submitted.id }), null);
  await ctx.db.query(`UPDATE members_import_bulks SET retry_at = now() - interval '1 second' WHERE id = $1`, [submitted.id]);
  await drain(c.club.id);
  const done = (await c.request('GET', `${c.base}/members/imports/${submitted.import_id}/bulks/${submitted.id}`)).body;
  assert.deepEqual([done.status, done.retries, done.members_created_number, done.members_with_validation_errors_number], ['finished', 1, 50, 0]);
  const dupes = await ctx.db.query('SELECT email, count(*)::int AS n FROM members WHERE loyalty_club_id = $1 GROUP BY email HAVING count(*) > 1', [c.club.id]);
  assert.deepEqual(dupes.rows, []);
  assert.equal(await count(c.club.id), 50);
});

test('the 5th failed run makes the bulk failed', async () => {
  const c = await clubWithDemoSchema(ctx);
  const submitted = (await c.request('POST', `${c.base}/members/imports`, { body: { members: [{ properties: { email: 'f@example.com', first_name: 'F' } }] } })).body;
  const statuses: string[] = [];
  for (let run = 1; run <= 5; run++) {
    await ctx.db.query(`UPDATE members_import_bulks SET retry_at = now() - interval '1 second' WHERE id = $1`, [submitted.id]);
    const claimed = await claimBulk(ctx.db, { bulkId: submitted.id });
    assert.ok(claimed, `run ${run}`);
    statuses.push((await processBulk(ctx.db, claimed!, { afterWrite: () => { throw new Error(`boom ${run}`); } })).status);
  }
  assert.deepEqual(statuses, ['waiting_for_retry', 'waiting_for_retry', 'waiting_for_retry', 'waiting_for_retry', 'failed']);
  const { rows } = await ctx.db.query('SELECT status, retries, last_error FROM members_import_bulks WHERE id = $1', [submitted.id]);
  assert.deepEqual(rows[0], { status: 'failed', retries: 5, last_error: 'boom 5' });
  await ctx.db.query(`UPDATE members_import_bulks SET retry_at = now() - interval '1 second' WHERE id = $1`, [submitted.id]);
  assert.equal(await claimBulk(ctx.db, { bulkId: submitted.id }), null);
  assert.equal(await count(c.club.id), 0);
  const overview = (await c.request('GET', `${c.base}/members/imports/${submitted.import_id}`)).body;
  assert.equal(overview.status, 'failed');
});

test('a worker that vanished: its lease expires, the bulk is retried, the stale worker cannot write', async () => {
  const c = await clubWithDemoSchema(ctx);
  const submitted = (await c.request('POST', `${c.base}/members/imports`, { body: { members: [{ properties: { email: 'lease@example.com', first_name: 'L' } }] } })).body;
  const stale = await claimBulk(ctx.db, { bulkId: submitted.id, leaseSeconds: 60 });
  assert.ok(stale);
  await ctx.db.query(`UPDATE members_import_bulks SET locked_until = now() - interval '1 second' WHERE id = $1`, [submitted.id]);
  // One worker run: reaps the expired lease (a failed run) and processes the bulk again.
  await runImportWork(ctx.db, { clubId: c.club.id });
  const { rows } = await ctx.db.query('SELECT status, retries, members_created_number FROM members_import_bulks WHERE id = $1', [submitted.id]);
  assert.deepEqual(rows[0], { status: 'finished', retries: 1, members_created_number: 1 });
  // The old worker wakes up: its lease is gone, it writes nothing.
  const late = await processBulk(ctx.db, stale!);
  assert.deepEqual(late, { status: 'working', created: 0, updated: 0, errors: 0 });
  assert.equal(await count(c.club.id), 1);
});

test('personal data of imports is purged after 24 h; counters stay; unprocessed bulks fail', async () => {
  const c = await clubWithDemoSchema(ctx);
  const done = (await c.request('POST', `${c.base}/members/imports`, { body: { members: [{ properties: { email: 'old@example.com', first_name: 'O' } }, { properties: { email: 'x' } }] } })).body;
  await drain(c.club.id);
  const pending = (await c.request('POST', `${c.base}/members/imports`, { body: { members: [{ properties: { email: 'late@example.com', first_name: 'L' } }] } })).body;
  const fresh = (await c.request('POST', `${c.base}/members/imports`, { body: { members: [{ properties: { email: 'new@example.com', first_name: 'N' } }] } })).body;
  await ctx.db.query(`UPDATE members_import_bulks SET created_at = now() - interval '25 hours' WHERE id = ANY ($1::bigint[])`, [[done.id, pending.id]]);
  assert.ok((await purgeImportPersonalData(ctx.db)) >= 2);
  const { rows } = await ctx.db.query(
    'SELECT id, status, members IS NULL AS purged, members_errors, members_created_number, members_with_validation_errors_number FROM members_import_bulks WHERE id = ANY ($1::bigint[]) ORDER BY id',
    [[done.id, pending.id, fresh.id]],
  );
  assert.deepEqual(rows.map((r) => ({ ...r, id: Number(r.id) })), [
    { id: done.id, status: 'finished', purged: true, members_errors: {}, members_created_number: 1, members_with_validation_errors_number: 1 },
    { id: pending.id, status: 'failed', purged: true, members_errors: {}, members_created_number: 0, members_with_validation_errors_number: 0 },
    { id: fresh.id, status: 'waiting', purged: false, members_errors: {}, members_created_number: 0, members_with_validation_errors_number: 0 },
  ]);
});

test('NDJSON file import (the CLI code path): bulks of 1000, bad lines reported, idempotent identifiers', async () => {
  const c = await clubWithDemoSchema(ctx);
  const dir = mkdtempSync(join(tmpdir(), 'hei-import-'));
  const file = join(dir, 'members.ndjson');
  const lines = Array.from({ length: 2100 }, (_, i) => JSON.stringify({ properties: { email: `file${i}@example.com`, msisdn: String(4790000000 + i), first_name: `F${i}` }, consents: { email_marketing: true } }));
  lines.splice(5, 0, '{not json', '', '[1,2]');
  lines.push(JSON.stringify({ properties: { email: 'file7@example.com', first_name: 'Again' } }));
  writeFileSync(file, lines.join('\n') + '\n');
  const progress: number[] = [];
  const summary = await importMembersFile(ctx.db, c.club.id, file, { concurrency: 2, onProgress: (p) => progress.push(p.created) });
  // The last line names a member of the first bulk. Bulks run two at a time: when the first bulk has
  // committed it is an update (create is an upsert), when both run at once the insert meets the
  // unique index and the member is reported `taken`.
  assert.deepEqual([summary.members, summary.bulks, summary.created, summary.updated + summary.errors, summary.failedBulks], [2101, 3, 2100, 3, []]);
  assert.deepEqual(summary.badLines, [{ line: 6, error: 'not valid JSON' }, { line: 8, error: 'not a JSON object' }]);
  if (summary.updated === 1) {
    assert.deepEqual(summary.sampleErrors, []);
    assert.equal((await ctx.db.query("SELECT properties->>'first_name' AS n FROM members WHERE loyalty_club_id = $1 AND email = 'file7@example.com'", [c.club.id])).rows[0].n, 'Again');
  } else {
    assert.deepEqual(summary.sampleErrors.map((e) => ({ ...e, errors: briefLeaves(e.errors) })), [{ key: 'file7@example.com', errors: { base: [{ error: 'taken' }] } }]);
  }
  assert.ok(progress.length >= 3);
  assert.equal(await count(c.club.id), 2100);
  const { rows } = await ctx.db.query('SELECT count(*)::int AS n, count(DISTINCT import_id)::int AS imports FROM members_import_bulks WHERE loyalty_club_id = $1', [c.club.id]);
  assert.deepEqual(rows[0], { n: 3, imports: 1 });
  // Visible through the API like any import.
  const overview = (await c.request('GET', `${c.base}/members/imports/${summary.importId}`)).body;
  assert.deepEqual([overview.status, overview.members_created_number, overview.bulks.map((b: any) => b.request_number).sort()], ['finished', 2100, [1, 2, 3]]);
});

test('a row with NUL or a lone surrogate is reported as that row, the rest is imported', async () => {
  const c = await clubWithDemoSchema(ctx);
  const members = [
    { properties: { email: 'clean@example.com', first_name: 'Clean' } },
    { properties: { email: 'nul@example.com', first_name: 'Nu\u0000l' } },
    { properties: { email: 'half@example.com', first_name: 'Half\ud800' } },
  ];
  const res = await c.request('POST', `${c.base}/members/imports`, { body: { members } });
  assert.equal(res.status, 201, res.text);
  await drain(c.club.id);
  const bulk = await c.request('GET', `${c.base}/members/imports/${res.body.import_id}/bulks/${res.body.id}`);
  assert.deepEqual(
    [bulk.body.status, bulk.body.members_created_number, bulk.body.members_with_validation_errors_number, briefLeaves(bulk.body.members_errors)],
    [
      'finished', 1, 2,
      {
        '#1': { properties: { first_name: [{ error: 'invalid_format', options: { format: 'text' } }] } },
        '#2': { properties: { first_name: [{ error: 'invalid_format', options: { format: 'text' } }] } },
      },
    ],
  );
  assert.equal(await count(c.club.id), 1);
});
