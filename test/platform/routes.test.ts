// Every registered route declares its permit, authorization kind, context and schema, and
// appears in the OpenAPI document; operational routes answer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp } from '../helpers.ts';
import { permitNames } from '../../src/platform/context.ts';

const ctx = await startTestApp();

const toOpenApiPath = (url: string) => url.replace(/:([A-Za-z_]+)/g, '{$1}');

test('all routes have a permit (or are public operational routes), a schema and an OpenAPI entry', async () => {
  const doc = (await ctx.fetch('GET', '/openapi.json')).body;
  assert.equal(doc.openapi, '3.1.0');
  const routes = ctx.app.registeredRoutes.filter((r) => !(r.url === '/docs' || r.url.startsWith('/docs/')));
  assert.ok(routes.length >= 5);
  const problems: string[] = [];
  for (const r of routes) {
    const name = `${r.method} ${r.url}`;
    if (!r.meta) problems.push(`${name}: no metadata`);
    else if (r.meta.permit === null && r.meta.auth !== 'None') problems.push(`${name}: no permit`);
    else if (permitNames(r.meta.permit).some((p) => !/^[A-Za-z]+(:[A-Za-z0-9]+)+$/.test(p))) problems.push(`${name}: odd permit ${r.meta.permit}`);
    if (!r.hasSchema) problems.push(`${name}: no schema`);
    const op = doc.paths[toOpenApiPath(r.url)]?.[r.method.toLowerCase()];
    if (!op) problems.push(`${name}: not in OpenAPI`);
    else {
      if (op['x-permit'] !== (permitNames(r.meta?.permit ?? null)[0] ?? null)) problems.push(`${name}: OpenAPI permit differs`);
      if (op['x-authorizations'] !== r.meta?.auth) problems.push(`${name}: OpenAPI authorization differs`);
      if (r.meta?.auth !== 'None' && !op.security) problems.push(`${name}: no security in OpenAPI`);
    }
  }
  assert.deepEqual(problems, []);
});

test('the interactive docs page is served', async () => {
  const res = await ctx.fetch('GET', '/docs/');
  assert.equal(res.status, 200);
  assert.match(res.text, /swagger/i);
});

test('/health and /ready answer without headers or token', async () => {
  assert.deepEqual((await ctx.fetch('GET', '/health', { headers: { 'X-User-Agent': undefined, 'X-Product-Name': undefined } })).body, { status: 'ok' });
  assert.deepEqual((await ctx.fetch('GET', '/ready')).body, { status: 'ready' });
});

test('/metrics counts requests by route pattern and status', async () => {
  const c = await ctx.newClub();
  await c.request('GET', '/v1/users?per_page=1');
  await c.request('GET', '/v1/users?per_page=1000');
  const res = await ctx.fetch('GET', '/metrics');
  assert.equal(res.status, 200);
  assert.match(res.text, /hei_http_requests_total\{method="GET",route="\/v1\/users",status="200"\} \d+/);
  assert.match(res.text, /hei_http_requests_total\{method="GET",route="\/v1\/users",status="422"\} \d+/);
  assert.match(res.text, /hei_http_request_duration_seconds_bucket\{le="0.005",method="GET",route="\/v1\/users",status="200"\}/);
});

test('request ids: given ids are echoed, others are generated', async () => {
  const given = await ctx.fetch('GET', '/health', { headers: { 'X-Request-Id': 'abc-123' } });
  assert.equal(given.headers.get('x-request-id'), 'abc-123');
  const generated = await ctx.fetch('GET', '/health');
  assert.match(generated.headers.get('x-request-id')!, /^[0-9a-f-]{36}$/);
});
