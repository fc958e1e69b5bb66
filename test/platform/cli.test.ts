// The `hei` CLI as a user runs it: real processes on the database under test.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';

const dataDir = mkdtempSync(join(tmpdir(), 'hei-cli-'));
after(() => rmSync(dataDir, { recursive: true, force: true }));
const env = { ...process.env, HEI_DATA_DIR: dataDir, LOG_LEVEL: 'silent' };

function hei(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/hei.js', ...args], { env, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as any).port;
      s.close(() => resolve(port));
    });
  });
}

async function withServer<T>(fn: (url: string) => Promise<T>): Promise<T> {
  const port = await freePort();
  const child = spawn(process.execPath, ['bin/hei.js', 'serve', '--no-seed'], { env: { ...env, PORT: String(port), HOST: '127.0.0.1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const url = `http://127.0.0.1:${port}`;
  try {
    for (let i = 0; i < 200; i++) {
      const ok = await fetch(url + '/ready').then((r) => r.ok, () => false);
      if (ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    return await fn(url);
  } finally {
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    assert.equal(code, 0, 'SIGTERM stops the server cleanly');
  }
}

const slug = `cli-${randomBytes(4).toString('hex')}`;
const headers = (token: string) => ({ 'X-User-Agent': 'cli test', 'X-Product-Name': 'backoffice', 'X-Loyalty-Club-Slug': slug, 'X-Client-Authorization': token });

test('clubs create, tokens create --json, the token works over HTTP, tokens revoke stops it', async () => {
  let r = hei('clubs', 'create', '--slug', slug, '--name', 'CLI Mall', '--languages', 'en,no');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`created loyalty club ${slug}`));

  r = hei('tokens', 'create', '--club', slug, '--product', 'backoffice', '--permit', 'Users:Api:Users:Index', '--json');
  assert.equal(r.code, 0, r.stderr);
  const { token } = JSON.parse(r.stdout);
  assert.match(token, /^[A-Za-z0-9]{28}$/);
  assert.deepEqual(Object.keys(JSON.parse(r.stdout)), ['token']);

  r = hei('tokens', 'list', '--club', slug);
  assert.equal(r.code, 0);
  // The club's own tokens, and any all-clubs tokens of other tests sharing the database.
  const line = r.stdout.trim().split('\n').find((l) => l.split('\t')[1] === token.slice(0, 6) + '…');
  assert.ok(line, r.stdout);
  const [id, , product, state] = line.split('\t');
  assert.deepEqual([product, state], ['backoffice', 'active']);

  await withServer(async (url) => {
    const res = await fetch(url + '/v1/users', { headers: headers(token) });
    assert.equal(res.status, 200);
  });

  r = hei('tokens', 'revoke', id, '--club', slug);
  assert.equal(r.code, 0, r.stderr);
  await withServer(async (url) => {
    const res = await fetch(url + '/v1/users', { headers: headers(token) });
    assert.equal(res.status, 401);
  });
  assert.equal(existsSync(join(dataDir, 'hei.pid')), false, 'the pid file is removed on stop');
});

test('bad arguments: clear messages and exit code 2', () => {
  const cases: Array<[string[], RegExp]> = [
    [['clubs', 'create', '--slug', 'Bad Slug', '--name', 'x'], /invalid slug/],
    [['clubs', 'create', '--name', 'x'], /required option '--slug <slug>' not specified/],
    [['tokens', 'create', '--club', 'no-such-club', '--product', 'p', '--all-permits'], /no loyalty club with slug "no-such-club"/],
    [['tokens', 'create', '--club', slug, '--product', 'p'], /give --permit P \(repeatable\) or --all-permits/],
    [['tokens', 'create', '--club', slug, '--product', 'p', '--permit', 'Made:Up:Permit'], /unknown permit\(s\): Made:Up:Permit/],
    [['tokens', 'revoke', 'abc', '--club', slug], /token id must be a number/],
    [['users', 'create', '--club', slug, '--role', 'ghost'], /unknown role\(s\)/],
    [['no-such-command'], /unknown command/],
  ];
  for (const [args, message] of cases) {
    const r = hei(...args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
  }
});

test('roles and users create: the user token works with the role permits', async () => {
  assert.equal(hei('roles', 'create', '--club', slug, '--name', 'viewer', '--permit', 'Users:Api:Users:Index').code, 0);
  const r = hei('users', 'create', '--club', slug, '--first-name', 'Kari', '--role', 'viewer', '--json');
  assert.equal(r.code, 0, r.stderr);
  const user = JSON.parse(r.stdout);
  const client = JSON.parse(hei('tokens', 'create', '--club', slug, '--product', 'backoffice', '--all-permits', '--json').stdout).token;
  await withServer(async (url) => {
    const res = await fetch(url + '/v1/users?sort_by=first_name', { headers: { ...headers(client), Authorization: `Bearer ${user.token}` } });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.deepEqual(body.users.map((u: any) => [u.id, u.first_name, u.roles]), [[user.id, 'Kari', ['viewer']]]);
  });
});
