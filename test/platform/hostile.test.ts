// Hostile input against every route of /openapi.json: prototype keys, NUL, lone surrogates, 2^63,
// 1e308, over-long params and empty JSON bodies. No answer may be a 5xx or leave the MPC error
// shape, nothing may leak into Object.prototype, and the server must still be serving afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp, type TestResponse } from '../helpers.ts';
import { createCampaign, createMessage, createSending, insertAudience, insertMember } from '../messaging/support.ts';

process.env.WEBHOOKS_ALLOW_PRIVATE = '1';
const ctx = await startTestApp();
const c = await ctx.newClub();

// One real resource of each kind, so that hostile bodies reach the handlers, not just a 404.
const message = await createMessage(c);
const sending = await createSending(c, message.id, { draft: true });
const memberId = await insertMember(ctx, c, { first_name: 'Ada' });
const audienceId = await insertAudience(ctx, c);
const campaignId = await createCampaign(c);
const group = await c.request('POST', `/v3/${c.club.slug}/members_groups`, { body: { name: 'G' } });
const template = await c.request('POST', '/v1/messages/templates', { body: { template: { name: 'T', type: 'plain', content: { body: 'Hei' } } } });
const wrapper = await c.request('POST', '/v1/messages/wrappers', { body: { wrapper: { name: 'W', type: 'generic', content: { body: '{{content}}' } } } });
const subscription = await c.request('POST', `/v3/${c.club.slug}/members_changes_subscriptions`, { body: { url: 'http://127.0.0.1:9/hook' } });
const identity = await c.request('POST', '/v1/sms_sender_identities', { body: { sms_sender_identity: { type: 'alphanumeric', value: 'Hei' } } });

/** A plausible value for a path parameter, by name and by the collection it follows. */
function pathValue(url: string, name: string): string {
  if (name === 'loyalty_club_slug' || name === 'club') return c.club.slug;
  if (name === 'service') return 'generic';
  const before = url.split('/').at(url.split('/').indexOf(`{${name}}`) - 1);
  const ids: Record<string, unknown> = {
    members: memberId,
    members_groups: group.body?.id ?? group.body?.members_group?.id,
    members_changes_subscriptions: subscription.body?.id ?? subscription.body?.members_changes_subscription?.id,
    audiences: audienceId,
    templates: template.body?.template?.id,
    wrappers: wrapper.body?.wrapper?.id,
    sendings: sending.id,
    generic: message.id,
    messages_campaigns: campaignId,
    sms_sender_identities: identity.body?.sms_sender_identity?.id,
  };
  return String(ids[before ?? ''] ?? 1);
}

const HOSTILE_PATH = ['%00', 'a%00b', '9223372036854775807', '1e308', '-1', '0', '__proto__', 'constructor', 'x'.repeat(2000), '%F0%9F', '%ED%A0%80'];
const HOSTILE_QUERY_VALUES = ['%00', 'a%00b', '9223372036854775807', '1e308', '-1', '__proto__', 'x'.repeat(5000)];
const HOSTILE_QUERIES = [
  '__proto__=x',
  '__proto__[base]=x',
  '__proto__[base][]=x',
  'constructor[prototype][base]=1',
  'properties[__proto__][base]=1',
  'properties[constructor][prototype]=1',
  'ids[]=9223372036854775807',
  'ids[]=1e308',
  'toString=1&hasOwnProperty=1&valueOf=1',
  `${'a'.repeat(3000)}=1`,
];

type Variant = 'nul' | 'surrogate' | 'huge' | 'infinite' | 'proto';

/** A body following the route's schema, with every leaf replaced by the variant's poison. */
function bodyFor(schema: any, variant: Variant, depth = 0): unknown {
  if (!schema || depth > 8) return null;
  if (schema.anyOf || schema.oneOf) return bodyFor((schema.anyOf ?? schema.oneOf)[0], variant, depth + 1);
  if (schema.enum) return schema.enum[0];
  if ('const' in schema) return schema.const;
  const type = Array.isArray(schema.type) ? schema.type.find((t: string) => t !== 'null') : schema.type;
  switch (type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const [k, s] of Object.entries<any>(schema.properties ?? {})) out[k] = bodyFor(s, variant, depth + 1);
      if (!schema.properties || schema.additionalProperties) out.free = variant === 'surrogate' ? 'x\ud800' : variant === 'nul' ? 'x\u0000' : 'y';
      if (variant === 'proto') {
        Object.defineProperty(out, '__proto__', { value: { base: ['polluted'] }, enumerable: true });
        Object.defineProperty(out, "constructor", { value: { prototype: { base: 1 } }, enumerable: true });
      }
      return out;
    }
    case 'array':
      return [bodyFor(schema.items, variant, depth + 1)];
    case 'string':
      return variant === 'nul' ? 'a\u0000b' : variant === 'surrogate' ? 'a\ud800b\udfff' : 'x';
    case 'integer':
    case 'number':
      return variant === 'infinite' ? 1e308 : variant === 'huge' ? 9223372036854775807 : 1;
    case 'boolean':
      return true;
    default:
      return variant === 'nul' ? 'a\u0000' : variant === 'surrogate' ? '\udc00' : {};
  }
}

/** The MPC shapes: `{"error": …}` (+ `details` for 422), or the documented empty 400. */
function shapeProblem(res: TestResponse): string | null {
  if (res.status >= 500) return `status ${res.status}: ${res.text.slice(0, 200)}`;
  if (res.status < 400) return null;
  if (res.status === 400 && res.text === '') return null;
  const b = res.body;
  if (typeof b !== 'object' || b === null || typeof b.error !== 'string') return `status ${res.status} without {error}: ${res.text.slice(0, 200)}`;
  const extra = Object.keys(b).filter((k) => k !== 'error' && !(res.status === 422 && k === 'details'));
  if (extra.length) return `status ${res.status} with keys ${extra.join(',')}: ${res.text.slice(0, 200)}`;
  if (/FST_|stack size|at .*\.ts:\d+/.test(res.text)) return `framework text leaked: ${res.text.slice(0, 200)}`;
  if (res.status === 422 && b.details !== undefined && (typeof b.details !== 'object' || b.details === null)) return '422 details not an object';
  return null;
}

const doc = (await ctx.fetch('GET', '/openapi.json')).body;
const operations: Array<{ method: string; url: string; op: any }> = [];
for (const [url, ops] of Object.entries<any>(doc.paths)) for (const [method, op] of Object.entries<any>(ops)) operations.push({ method: method.toUpperCase(), url, op });

const problems: string[] = [];
async function probe(method: string, path: string, opts: Parameters<typeof c.request>[2] = {}, label = '') {
  const res = await c.request(method, path, opts);
  const p = shapeProblem(res);
  if (p) problems.push(`${method} ${path.slice(0, 120)} ${label}: ${p}`);
  return res;
}

const fill = (url: string, override: Record<string, string> = {}) =>
  url.replace(/\{([A-Za-z_]+)\}/g, (_, name: string) => override[name] ?? pathValue(url, name));

test('every route of /openapi.json survives hostile path params, queries and bodies', { timeout: 600_000 }, async () => {
  assert.ok(operations.length > 50, `only ${operations.length} operations`);
  for (const { method, url, op } of operations) {
    if (url === '/metrics' || url.startsWith('/docs')) continue;
    const params: any[] = op.parameters ?? [];
    for (const p of params.filter((x) => x.in === 'path')) {
      for (const v of HOSTILE_PATH) {
        const res = await probe(method, fill(url, { [p.name]: v }), {}, `path ${p.name}`);
        if (/^(id|.*_id)$/.test(p.name) && /^(9223372036854775807|1e308|-1|0)$/.test(v) && res.status === 422) {
          problems.push(`${method} ${url}: out-of-range path id ${v} answered 422, expected 404`);
        }
      }
    }
    const base = fill(url);
    for (const q of HOSTILE_QUERIES) await probe(method, `${base}?${q}`, {}, 'query');
    for (const p of params.filter((x) => x.in === 'query')) {
      for (const v of HOSTILE_QUERY_VALUES) {
        await probe(method, `${base}?${p.name}=${v}`, {}, `query ${p.name}`);
        await probe(method, `${base}?${p.name}[]=${v}`, {}, `query ${p.name}[]`);
        await probe(method, `${base}?${p.name}[__proto__]=${v}`, {}, `query ${p.name}[__proto__]`);
      }
    }
    if (method === 'GET') continue;
    // An empty body with a JSON content type is no body: never a 400.
    const empty = await probe(method, base, { raw: '' }, 'empty JSON body');
    if (empty.status === 400) problems.push(`${method} ${url}: empty JSON body answered 400`);
    const schema = op.requestBody?.content?.['application/json']?.schema;
    const variants: Variant[] = ['nul', 'surrogate', 'huge', 'infinite', 'proto'];
    for (const variant of variants) {
      const body = bodyFor(schema ?? { type: 'object' }, variant);
      const raw = JSON.stringify(body).replace(/9223372036854776000/g, '9223372036854775807');
      await probe(method, base, { raw }, `body ${variant}`);
    }
    await probe(method, base, { raw: '{"__proto__":{"base":["x"]},"constructor":{"prototype":{"base":1}}}' }, 'body proto keys');
  }
  // Let anything thrown outside a handler (a metrics scrape, a timer) surface before judging.
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(problems, []);
  assert.equal(({} as any).base, undefined, 'Object.prototype was polluted');
  assert.deepEqual(Object.keys(Object.prototype), []);
  assert.equal((await ctx.fetch('GET', '/health')).status, 200);
  const metrics = await ctx.fetch('GET', '/metrics');
  assert.equal(metrics.status, 200);
  assert.match(metrics.text, /hei_http_requests_total/);
  assert.equal((await c.request('GET', '/v1/messages/services')).status, 200);
});

test('prototype keys in a query are ordinary unknown keys: 422 not_permitted, and the server keeps serving', async () => {
  const res = await c.request('GET', '/v1/users?__proto__=x');
  assert.equal(res.status, 422);
  assert.deepEqual(Object.keys(res.body), ['error', 'details']);
  assert.equal(res.body.details.__proto__?.[0]?.error, 'not_permitted');
  assert.equal(Object.getPrototypeOf(res.body.details), Object.prototype);
  assert.equal(({} as any).base, undefined);
  const constructor = await c.request('GET', '/v1/users?constructor[prototype][base]=1');
  assert.equal(constructor.status, 422);
  assert.equal(constructor.body.details.constructor?.[0]?.error, 'not_permitted');
  await new Promise((r) => setTimeout(r, 200));
  assert.equal((await ctx.fetch('GET', '/metrics')).status, 200);
  assert.equal((await c.request('GET', '/v1/users')).status, 200);
});

test('NUL and lone surrogates are refused at the edge: 422 invalid_format on the field, 404 in a path', async () => {
  const base = `/v3/${c.club.slug}`;
  const memberId = await insertMember(ctx, c, { first_name: 'Ada' });
  const nul = await c.request('PUT', `${base}/members/${memberId}`, { body: { properties: { first_name: 'A\u0000da' } } });
  assert.deepEqual([nul.status, nul.body], [422, { error: 'Invalid parameters', details: { properties: { first_name: [{ error: 'invalid_format', options: { format: 'text' } }] } } }]);
  const lone = await c.request('PUT', `${base}/members/${memberId}`, { raw: '{"properties":{"first_name":"A\\ud800"}}' });
  assert.deepEqual([lone.status, lone.body.details], [422, { properties: { first_name: [{ error: 'invalid_format', options: { format: 'text' } }] } }]);
  const group = await c.request('POST', `${base}/members_groups`, { body: { members_group: { name: 'G\u0000' } } });
  assert.deepEqual([group.status, group.body.details], [422, { members_group: { name: [{ error: 'invalid_format', options: { format: 'text' } }] } }]);
  const search = await c.request('GET', `${base}/members?search=a%00b`);
  assert.deepEqual([search.status, search.body.details], [422, { search: [{ error: 'invalid_format', options: { format: 'text' } }] }]);
  const template = await c.request('POST', '/v1/messages/templates', { body: { template: { name: 'T', type: 'plain', content: { body: 'Hei\u0000' } } } });
  assert.deepEqual([template.status, template.body.details], [422, { template: { content: { body: [{ error: 'invalid_format', options: { format: 'text' } }] } } }]);
  assert.deepEqual(await c.request('GET', `${base}/members/imports/a%00b`).then((r) => [r.status, r.body]), [404, { error: 'Not found' }]);
  const report = await ctx.fetch('POST', '/v1/transports/http-sms/a%00b/reports', { raw: '{}' });
  assert.deepEqual([report.status, report.body], [404, { error: 'Not found' }]);
  const rows = await ctx.db.query('SELECT properties FROM members WHERE id = $1', [memberId]);
  assert.equal((rows.rows[0] as any).properties.first_name, 'Ada');
});

test('ids out of range: 422 in a query, 404 in a path', async () => {
  for (const value of ['9223372036854775807', '1e308']) {
    for (const path of ['/v1/messages/generic', '/v1/messages_overview']) {
      const res = await c.request('GET', `${path}?campaign_id=${value}`);
      assert.deepEqual([res.status, res.body.details], [422, { campaign_id: [{ error: 'less_or_equal_to', options: { number: Number.MAX_SAFE_INTEGER } }] }], `${path} ${value}`);
    }
  }
  for (const id of ['2147483648', '9223372036854775807', '1e308', '0', '1.5']) {
    const res = await c.request('PUT', `/v1/messages/generic/sendings/${id}/cancel`);
    assert.deepEqual([res.status, Object.keys(res.body)], [404, ['error']], id);
  }
});

test('framework errors answer in the MPC shape and never echo the path', async () => {
  const long = await c.request('GET', `/v1/messages/generic/${'9'.repeat(500)}`);
  assert.deepEqual([long.status, long.body], [414, { error: 'Request-URI too long' }]);
  const bad = await c.request('GET', '/v1/messages/generic/%E0%A4%A');
  assert.deepEqual([bad.status, bad.body], [400, { error: 'Malformed URL' }]);
});

test('an empty body sent as JSON is no body; a non-empty one that is not JSON stays 400', async () => {
  const m = await createMessage(c);
  const duplicated = await c.request('PUT', `/v1/messages/generic/${m.id}/duplicate`, { raw: '' });
  assert.equal(duplicated.status, 200, duplicated.text);
  const campaign = await createCampaign(c, 'Empty bodies');
  const archived = await c.request('PUT', `/v1/messages_campaigns/${campaign}/archive`, { raw: '' });
  assert.equal(archived.status, 200, archived.text);
  const deleted = await c.request('DELETE', `/v1/messages/generic/${m.id}`, { raw: '' });
  assert.equal(deleted.status, 200, deleted.text);
  const broken = await c.request('PUT', `/v1/messages_campaigns/${campaign}/restore`, { raw: 'not json' });
  assert.deepEqual([broken.status, broken.text], [400, '']);
});

test('a club header contradicting the path slug is 401', async () => {
  const other = await ctx.newClub();
  const res = await c.request('GET', `/v3/${c.club.slug}/members`, { headers: { 'X-Loyalty-Club-Slug': other.club.slug } });
  assert.deepEqual([res.status, res.body], [401, { error: 'Client token does not match the loyalty club' }]);
  const same = await c.request('GET', `/v3/${c.club.slug}/members`, { headers: { 'X-Loyalty-Club-Slug': c.club.slug } });
  assert.equal(same.status, 200);
});

test('templates have a nesting limit with its own key, never a stack overflow', async () => {
  const nest = (n: number) => '{% if a %}'.repeat(n) + 'x' + '{% endif %}'.repeat(n);
  const deep = await c.request('POST', '/v1/messages/templates', { body: { template: { name: 'Deep', type: 'plain', content: { body: nest(2000) } } } });
  assert.deepEqual([deep.status, deep.body.details], [422, { template: { content: { body: [{ error: 'too_deeply_nested', options: { max_depth: 50 } }] } } }]);
  const inLiquidTag = `{% liquid\n${'if a\n'.repeat(60)}echo 1\n${'endif\n'.repeat(60)}%}`;
  const liquidTag = await c.request('POST', '/v1/messages/templates', { body: { template: { name: 'Deep', type: 'plain', content: { body: inLiquidTag } } } });
  assert.deepEqual([liquidTag.status, liquidTag.body.details], [422, { template: { content: { body: [{ error: 'too_deeply_nested', options: { max_depth: 50 } }] } } }]);
  const fine = await c.request('POST', '/v1/messages/templates', { body: { template: { name: 'Fine', type: 'plain', content: { body: nest(50) } } } });
  assert.equal(fine.status, 200, fine.text);
});
