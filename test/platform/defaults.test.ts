// Safer defaults: the API listens on 127.0.0.1 unless HOST says otherwise, and /metrics can be
// protected by a token (METRICS_TOKEN) or moved to its own port (METRICS_PORT).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp } from '../helpers.ts';
import { loadConfig } from '../../src/platform/config.ts';
import { startMetricsServer } from '../../src/platform/metrics.ts';

test('the API listens on 127.0.0.1 unless HOST is set', () => {
  assert.equal(loadConfig({}).host, '127.0.0.1');
  assert.equal(loadConfig({ HOST: '0.0.0.0' }).host, '0.0.0.0');
  assert.equal(loadConfig({ METRICS_PORT: '9464' }).metricsPort, 9464);
});

test('METRICS_TOKEN: /metrics needs the bearer token', async () => {
  const ctx = await startTestApp({ config: loadConfig({ METRICS_TOKEN: 's3cret' }) });
  const none = await ctx.fetch('GET', '/metrics');
  assert.deepEqual([none.status, none.body], [401, { error: 'Invalid metrics token' }]);
  const wrong = await ctx.fetch('GET', '/metrics', { headers: { Authorization: 'Bearer nope' } });
  assert.equal(wrong.status, 401);
  const right = await ctx.fetch('GET', '/metrics', { headers: { Authorization: 'Bearer s3cret' } });
  assert.equal(right.status, 200);
  assert.match(right.text, /hei_http_requests_total/);
});

test('METRICS_PORT: metrics only on their own listener, not on the API port', async () => {
  const config = { ...loadConfig({ METRICS_PORT: '1', METRICS_HOST: '127.0.0.1' }), metricsPort: 0 };
  const ctx = await startTestApp({ config });
  assert.deepEqual(await ctx.fetch('GET', '/metrics').then((r) => [r.status, r.body]), [404, { error: 'Not found' }]);
  const server = await startMetricsServer(ctx.app.hei.metrics, config);
  after(() => server.close());
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(res.status, 200);
  assert.match(await res.text(), /process_cpu_user_seconds_total/);
  assert.equal((await fetch(`http://127.0.0.1:${port}/v1/users`)).status, 404);
});
