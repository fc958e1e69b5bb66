// The process guard: an uncaught failure of one request is logged with its request id and the
// server keeps serving; a failure that leaves the prototypes tampered ends the process with status 1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('./fixtures/guard-server.ts', import.meta.url));

test('an uncaught failure is logged with its request id; sound state keeps serving, tampered state exits 1', { timeout: 180_000 }, async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = once(child, 'exit');
  const waitFor = async (re: RegExp) => {
    for (let i = 0; i < 2400 && !re.test(out); i++) await new Promise((r) => setTimeout(r, 50));
    return re.exec(out);
  };
  try {
    const port = (await waitFor(/PORT (\d+)/))?.[1];
    assert.ok(port, out);
    const base = `http://127.0.0.1:${port}`;
    const first = await fetch(`${base}/test/fail-later`, { headers: { 'X-Request-Id': 'req-confined-1' } });
    assert.equal(first.status, 200);
    const logged = await waitFor(/"level":50.*"reqId":"req-confined-1".*still serving|still serving.*"reqId":"req-confined-1"/);
    assert.ok(logged, out);
    assert.equal((await fetch(`${base}/health`)).status, 200);

    const second = await fetch(`${base}/test/pollute-then-fail`, { headers: { 'X-Request-Id': 'req-polluting-2' } });
    assert.equal(second.status, 200);
    const [code] = (await exited) as [number | null];
    assert.equal(code, 1, out);
    assert.match(out, /"level":60.*"reqId":"req-polluting-2".*prototypes changed: Object/);
  } finally {
    if (child.exitCode === null) child.kill();
  }
});
