// `hei import members` as a user runs it: a separate process on its own store (a PGlite data
// folder, or the PostgreSQL server of DATABASE_URL).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dataDir = mkdtempSync(join(tmpdir(), 'hei-cli-'));
const hei = (...args: string[]) =>
  spawnSync(process.execPath, ['bin/hei.js', ...args], { encoding: 'utf8', env: { ...process.env, HEI_DATA_DIR: dataDir, LOG_LEVEL: 'silent' } });

test('hei import members: create, then update by e-mail, with a summary and usage errors', { timeout: 120_000 }, () => {
  const slug = `cli-${randomBytes(4).toString('hex')}`;
  assert.equal(hei('clubs', 'create', '--slug', slug, '--name', 'CLI club', '--languages', 'en,no').status, 0);
  const file = join(dataDir, 'members.ndjson');
  const members = Array.from({ length: 1500 }, (_, i) => JSON.stringify({ properties: { email: `cli${i}@example.com`, first_name: `C${i}` } }));
  writeFileSync(file, [...members, '{oops', JSON.stringify({ properties: { email: 'bad', language: 'pl' } })].join('\n') + '\n');

  const created = hei('import', 'members', file, '--club', slug);
  assert.equal(created.status, 0, created.stderr);
  const lines = created.stdout.trim().split('\n');
  assert.match(lines[0], /^import [0-9a-f-]{36}: 1501 member\(s\) in 2 bulk\(s\), \d+\.\d s$/);
  assert.deepEqual(lines.slice(1), [
    '  created 1500, updated 0, with errors 2',
    '  line 1501: not valid JSON',
    '  bad: {"properties":{"email":[{"error":"invalid_format","value":"bad","message":"has an invalid format (email)","options":{"format":"email"}}],"language":[{"error":"value_not_match","value":"pl","message":"value not match","options":{"value":"pl","values":"en, no","property":"language"}}]}}',
  ]);

  const changes = join(dataDir, 'changes.ndjson');
  writeFileSync(changes, [JSON.stringify({ properties: { email: 'CLI1@example.com', last_name: 'Updated' } }), JSON.stringify({ properties: { email: 'nobody@example.com' } })].join('\n'));
  const updated = hei('import', 'members', changes, '--club', slug, '--operation', 'update', '--identifier', 'email');
  assert.equal(updated.status, 0, updated.stderr);
  assert.deepEqual(updated.stdout.trim().split('\n').slice(1), [
    '  created 0, updated 1, with errors 1',
    '  nobody@example.com: {"properties":{"email":[{"error":"does_not_exist","value":"nobody@example.com","message":"does not exist","options":{}}]}}',
  ]);

  const usage = hei('import', 'members', file, '--club', slug, '--operation', 'upsert');
  assert.deepEqual([usage.status, usage.stderr], [2, 'hei: --operation must be create or update, got "upsert"\n']);
  const noClub = hei('import', 'members', file, '--club', 'no-such-club');
  assert.deepEqual([noClub.status, noClub.stderr], [2, 'hei: no loyalty club with slug "no-such-club" (see: hei clubs list)\n']);
});
