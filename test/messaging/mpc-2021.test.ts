// Messaging as the 2021 MPC docs settle it (issue 17, shared/spec/mpc-2021-messaging.md §3–§4):
// merge tags, recipients, templates and wrappers, schedules, counters, reference errors and id
// bounds, 422 leaves, settings and permits, dispatches, personal data, services, empty lists.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { setClubTransport } from '../../src/transports/config.ts';
import { registerClubTransports } from '../../src/transports/directory.ts';
import { stripExpiredDispatches } from '../../src/messaging/personal-data.ts';
import { MAX_ID } from '../../src/platform/schema.ts';
import { createMessage, dispatchesOf, insertMembers, showSending, startDeliveryApp, waitFor } from '../delivery/helpers.ts';
import { startSmtpPeer } from '../transports/smtp-peer.ts';
import type { TestClub } from '../helpers.ts';

process.env.HEI_SECRET_KEY ??= 'hei-test-suite-key';

const ctx = await startDeliveryApp();
const unregister = registerClubTransports(ctx.db, { recheckMs: 0 });
const smtp = await startSmtpPeer();
after(async () => {
  await unregister();
  await smtp.close();
});

const inline = (type: string, content: Record<string, unknown>, wrapper_id?: number) => ({ type: 'inline', definition: { type, content, ...(wrapper_id ? { wrapper_id } : {}) } });
const smsChannel = (body: string) => ({ type: 'sms', sender: { type: 'alphanumeric', value: 'Mall' }, template: inline('plain', { body }) });
const emailChannel = (content: Record<string, unknown>) => ({ type: 'email', from_email: 'news@example.com', from_name: 'Mall', template: inline('email', content) });
const pushChannel = (content: Record<string, unknown>) => ({ type: 'push', template: inline('push', content) });
const send = (c: TestClub, message: Record<string, unknown>) => c.request('POST', '/v1/messages/generic', { body: { message: { name: 'MPC test', ...message } } });

/** The outbox lines of a sending, by recipient. */
async function outboxOf(sendingId: number) {
  return (await ctx.outbox()).filter((l) => l.sending_id === sendingId);
}

// ---------- 1. merge tags: member / member_id / bare address × flat / member. / recipient tags × SMS / e-mail / push ----------

const TAGS = 'F={{ first_name }}|M={{ member.first_name }}|I={{ member.id }}|ME={{ member.email }}|MS={{ member.msisdn }}|MT={{ member.app_token }}|D={{ dmp.x }}|E={{ email }}|S={{ msisdn }}|T={{ app_token }}|P={{ p }}';

test('merge tags: member.*, flat tags and a bare recipient’s own identifiers, on SMS, e-mail (SMTP peer) and push', async () => {
  const c = await ctx.club();
  await setClubTransport(ctx.db, c.club.id, { channel: 'email', url: `smtp://mailer:pw@127.0.0.1:${smtp.port}?pool=1` });
  const [audienceMember, recipientMember] = await insertMembers(ctx.db, c.club.id, [
    { first_name: 'Ola', city: 'Bergen', msisdn: '4793000001', email: 'ola@example.com', push_token: 'tok-ola' },
    { first_name: 'Kari', city: 'Molde', msisdn: '4793000002', email: 'kari@example.com', push_token: 'tok-kari' },
  ]);
  const audience = { type: 'inline', conditions: [{ condition_group: 'member_properties', field: 'city', operator: 'match', value: 'Bergen' }] };
  const expect = {
    audience: `F=Ola|M=Ola|I=${audienceMember}|ME=ola@example.com|MS=4793000001|MT=tok-ola|D=|E=ola@example.com|S=4793000001|T=|P=`,
    member: `F=Kari|M=Kari|I=${recipientMember}|ME=kari@example.com|MS=4793000002|MT=tok-kari|D=|E=kari@example.com|S=4793000002|T=|P=rp`,
    bare: 'F=|M=|I=|ME=|MS=|MT=|D=|E=bare@example.com|S=4793000009|T=tok-bare|P=bp',
  };
  // The member_id recipient's own addresses are used: the address given beside member_id is ignored.
  const recipients = [
    { member_id: recipientMember, email: 'ignored@example.com', properties: { p: 'rp' } },
    { email: 'bare@example.com', msisdn: '4793000009', app_token: 'tok-bare', properties: { p: 'bp' } },
  ];
  const channels = {
    sms: smsChannel(TAGS),
    email: emailChannel({ body: `<p>${TAGS}</p>` }), // no subject: the message name is the subject
    push: pushChannel({ subject: 'T', body: TAGS, uri: 'app://offer/{{ member.id }}' }),
  };
  for (const [channel, definition] of Object.entries(channels)) {
    const res = await send(c, { name: `Merge ${channel}`, channels: [definition], sending: { schedule: { type: 'immediate' }, audience, recipients } });
    assert.equal(res.status, 200, res.text);
    const sendingId = res.body.message.latest_sending.id;
    await waitFor(`${channel} transmitted`, async () => {
      await ctx.engine.drain();
      return (await showSending(c, 'generic', sendingId)).status === 'transmitted';
    });
    const ds = await dispatchesOf(ctx.db, sendingId);
    assert.deepEqual(ds.map((d) => d.status), ['sent', 'sent', 'sent'], channel);
    const member = ds.find((d) => d.member_id === recipientMember);
    if (channel === 'email') {
      assert.equal(member.email, 'kari@example.com');
      const mails = smtp.mails.filter((m) => m.subject === 'Merge email');
      assert.equal(mails.length, 3);
      const html = (to: string) => mails.find((m) => (m.to as any).text === to)!.html;
      assert.equal(html('ola@example.com'), `<p>${expect.audience}</p>`);
      assert.equal(html('kari@example.com'), `<p>${expect.member}</p>`);
      assert.equal(html('bare@example.com'), `<p>${expect.bare}</p>`);
      continue;
    }
    const lines = await outboxOf(sendingId);
    const text = (l: any) => (channel === 'sms' ? l.content.text : l.content.body);
    const byMember = (id: number | null) => lines.find((l) => (l.recipient.memberId ?? null) === id)!;
    assert.equal(text(byMember(audienceMember)), expect.audience, channel);
    assert.equal(text(byMember(recipientMember)), expect.member, channel);
    assert.equal(text(byMember(null)), expect.bare, channel);
    if (channel === 'push') assert.equal((byMember(recipientMember).content as any).url, `app://offer/${recipientMember}`);
  }
});

test('List Merge Properties shows the flat tags and member.*', async () => {
  const c = await ctx.club();
  const res = await c.request('GET', '/v1/messages/merge_properties');
  assert.equal(res.status, 200);
  const names = res.body.merge_properties.map((p: any) => `${p.name}:${p.source}`);
  for (const n of ['first_name:standard', 'email:standard', 'app_token:recipient', 'city:member_schema', 'member.id:member', 'member.msisdn:member', 'member.email:member', 'member.app_token:member', 'member.first_name:member', 'member.city:member']) {
    assert.ok(names.includes(n), n);
  }
});

// ---------- 6. sending resource and counters ----------

test('sending resource: scheduled_with, recipients, dispatches_count null until executed, members_count = members handed over', async () => {
  const c = await ctx.club();
  const [m1, m2, noConsent] = await insertMembers(ctx.db, c.club.id, [
    { first_name: 'A', msisdn: '4794000001', city: 'Oslo', consents: ['sms_marketing'] },
    { first_name: 'B', msisdn: '4794000002', city: 'Hamar' },
    { first_name: 'C', msisdn: '4794000003', city: 'Oslo' },
  ]);
  const res = await send(c, {
    channels: [smsChannel('Hi {{ member.first_name }}')],
    sending: { schedule: { type: 'relative', in: '1 hour' }, recipients: [{ member_id: m2, properties: { x: 1 } }, { msisdn: '4794000009' }] },
  });
  assert.equal(res.status, 200, res.text);
  const scheduled = await showSending(c, 'generic', res.body.message.latest_sending.id);
  assert.equal(scheduled.dispatches_count, null);
  assert.equal(res.body.message.latest_sending.dispatches_count, null);
  assert.equal(scheduled.members_count, 0);
  assert.deepEqual(scheduled.scheduled_with, { type: 'relative', in: '1 hour' });
  assert.deepEqual(scheduled.schedule, scheduled.scheduled_with);
  assert.deepEqual(scheduled.recipients, [
    { member_id: m2, msisdn: null, email: null, app_token: null, properties: { x: 1 } },
    { member_id: null, msisdn: '4794000009', email: null, app_token: null, properties: {} },
  ]);

  // A marketing sending: the audience member without consent is skipped and never counted.
  const now = await c.request('POST', `/v1/messages/generic/${res.body.message.id}/sendings`, {
    body: { sending: { schedule: { type: 'immediate' }, audience: { type: 'inline', conditions: [{ condition_group: 'member_properties', field: 'city', operator: 'match', value: 'Oslo' }] }, recipients: [{ member_id: m2 }, { msisdn: '4794000009' }] } },
  });
  assert.equal(now.status, 200, now.text);
  await ctx.db.query('UPDATE messages SET marketing = true WHERE id = $1', [res.body.message.id]);
  await ctx.db.query(`UPDATE members SET consents = '{"sms_marketing": {"status": true}}' WHERE id = $1`, [m2]);
  await ctx.engine.drain();
  const done = await showSending(c, 'generic', now.body.sending.id);
  assert.equal(done.status, 'transmitted');
  assert.equal(done.members_count, 2); // m1 (audience) and m2 (member_id); not noConsent, not the bare address
  assert.equal(done.dispatches_count, 3);
  assert.equal(done.stats.skipped, 1);
  const skipped = (await dispatchesOf(ctx.db, done.id)).find((d) => d.member_id === noConsent);
  assert.equal(skipped.skip_reason, 'no_marketing_consent');
  assert.ok((await dispatchesOf(ctx.db, done.id)).some((d) => d.member_id === m1 && d.status === 'sent'));
  const msg = await c.request('GET', `/v1/messages/generic/${res.body.message.id}`);
  assert.equal(msg.body.message.latest_sending.members_count, 2);
  assert.equal(msg.body.message.latest_sending.dispatches_count, 3);
  const list = await c.request('GET', `/v1/messages/generic/${res.body.message.id}/sendings?sort_by=id`);
  assert.deepEqual(list.body.sendings.map((s: any) => [s.members_count, s.dispatches_count, 'recipients' in s]), [[0, null, false], [2, 3, false]]);
});

// ---------- 2. recipients ----------

test('recipients: app_token (push_token an alias, never emitted), an identifier for one of the message’s channels', async () => {
  const c = await ctx.club();
  const m = await send(c, { channels: [pushChannel({ body: 'x' })], sending: { draft: true, recipients: [{ app_token: 'tok-1' }, { push_token: 'tok-2' }] } });
  assert.equal(m.status, 200, m.text);
  const s = await showSending(c, 'generic', m.body.message.latest_sending.id);
  assert.deepEqual(s.recipients.map((r: any) => [r.app_token, 'push_token' in r]), [['tok-1', false], ['tok-2', false]]);
  const both = await send(c, { channels: [pushChannel({ body: 'x' })], sending: { draft: true, recipients: [{ app_token: 'a', push_token: 'b' }] } });
  assert.equal(both.status, 422);
  assert.deepEqual(both.body.details, { message: { sending: { recipients: { 0: { push_token: [{ error: 'attribute_cannot_be_present_with', options: { with: 'app_token' } }] } } } } });
  const wrong = await send(c, { channels: [smsChannel('x')], sending: { draft: true, recipients: [{ email: 'a@example.com' }, { member_id: 1 }] } });
  assert.equal(wrong.status, 422);
  assert.deepEqual(wrong.body.details.message.sending.recipients[0], { base: [{ error: 'recipient_must_have_identifier_for_channels', options: { channels: ['sms'] } }] });
  assert.deepEqual(wrong.body.details.message.sending.recipients[1], { member_id: [{ error: 'does_not_exist' }] });
});

// ---------- 3. templates ----------

test('templates: generic type, MPC content names, optional e-mail subject, include/render/layout refused on save', async () => {
  const c = await ctx.club();
  const create = (template: Record<string, unknown>) => c.request('POST', '/v1/messages/templates', { body: { template: { name: 't', ...template } } });
  let r = await create({ type: 'generic', content: { body: '{{ content }}', subject: 'S', preheader: 'P', uri: 'app://x' } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.template.content, { body: '{{ content }}', subject: 'S', preheader: 'P', uri: 'app://x' });
  r = await create({ type: 'push', content: { body: 'b', uri: 'app://y' } });
  assert.deepEqual([r.status, r.body.template?.content], [200, { body: 'b', uri: 'app://y' }]);
  r = await create({ type: 'bee_email', content: { body: '<p/>', bee_json: { page: {} } } });
  assert.deepEqual([r.status, r.body.template?.content], [200, { body: '<p/>', bee_json: { page: {} } }]);
  r = await create({ type: 'email', content: { body: '<p/>' } });
  assert.equal(r.status, 200, r.text);
  r = await create({ type: 'bee_email', content: { body: '<p/>' } });
  assert.deepEqual(r.body.details, { template: { content: { bee_json: [{ error: 'blank' }] } } });
  for (const tag of ['include', 'render', 'layout']) {
    r = await create({ type: 'plain', content: { body: `Hi {% ${tag} 'x' %}` } });
    assert.equal(r.status, 422, tag);
    assert.deepEqual(r.body.details, { template: { content: { body: [{ error: 'liquid_tag_not_allowed', options: { tag } }] } } });
  }
  r = await create({ type: 'plain', content: { body: '{% if %}' } });
  assert.equal(r.body.details.template.content.body[0].error, 'liquid_syntax_error');
  assert.equal(typeof r.body.details.template.content.body[0].options.syntax_error, 'string');
});

test('a sending of which nothing could be rendered ends failed with status_reason render_failed', async () => {
  const c = await ctx.club();
  // Parses, but renders more than the output limit.
  const body = `{% for i in (1..6000) %}${'x'.repeat(100)}{% endfor %}`;
  const { sendingId } = await createMessage(c, 'generic', { channels: [smsChannel(body)], sending: { schedule: { type: 'immediate' }, recipients: [{ msisdn: '4795000001' }] } });
  await ctx.engine.drain();
  const s = await showSending(c, 'generic', sendingId!);
  assert.deepEqual([s.status, s.status_reason, s.stats.failed], ['failed', 'render_failed', 1]);
  assert.match((await dispatchesOf(ctx.db, sendingId!))[0].error, /^render failed: /);
});

// ---------- 4. wrappers are templates ----------

const CONTENT: Record<string, Record<string, unknown>> = {
  plain: { body: '[{{ content }}]' },
  email: { body: '<div>{{ content }}</div>' },
  bee_email: { body: '<div>{{ content }}</div>', bee_json: {} },
  push: { body: '[{{ content }}]' },
  generic: { body: '[{{ content }}]' },
};
const ALLOWED: Record<string, string[]> = {
  plain: ['generic', 'email', 'bee_email', 'push', 'plain'],
  email: ['generic', 'email', 'bee_email'],
  push: ['generic', 'push'],
  bee_email: ['generic'],
  generic: ['generic', 'email', 'bee_email', 'push'],
};

test('wrapping: every allowed and refused type pair; one level, per attribute; a wrapper in use cannot be deleted', async () => {
  const c = await ctx.club();
  const wrappers: Record<string, number> = {};
  for (const type of Object.keys(CONTENT)) {
    const r = await c.request('POST', '/v1/messages/templates', { body: { template: { name: `w-${type}`, type, content: CONTENT[type] } } });
    assert.equal(r.status, 200, r.text);
    wrappers[type] = r.body.template.id;
  }
  for (const type of Object.keys(CONTENT)) {
    for (const wrapperType of Object.keys(CONTENT)) {
      const r = await c.request('POST', '/v1/messages/templates', { body: { template: { name: 'x', type, content: CONTENT[type], wrapper_id: wrappers[wrapperType] } } });
      if (ALLOWED[type].includes(wrapperType)) assert.equal(r.status, 200, `${type} ← ${wrapperType}: ${r.text}`);
      else assert.deepEqual([r.status, r.body.details], [422, { template: { wrapper_id: [{ error: 'wrapper_type_does_not_match', options: { in: ALLOWED[type] } }] } }], `${type} ← ${wrapperType}`);
    }
  }
  const unknown = await c.request('POST', '/v1/messages/templates', { body: { template: { name: 'x', type: 'plain', content: { body: 'b' }, wrapper_id: MAX_ID } } });
  assert.deepEqual(unknown.body.details, { template: { wrapper_id: [{ error: 'template_does_not_exist' }] } });

  // Rendering: the wrapper's body wraps, its subject replaces (no {{ content }}), its empty preheader keeps the template's.
  const outer = await c.request('POST', '/v1/messages/templates', {
    body: { template: { name: 'outer', type: 'generic', content: { body: '<main>{{ content }}</main><i>{{ member.first_name }}</i>', subject: 'Fixed', preheader: '' }, wrapper_id: wrappers.generic } },
  });
  assert.equal(outer.status, 200, outer.text);
  const [m] = await insertMembers(ctx.db, c.club.id, [{ first_name: 'Per', email: 'per@example.com' }]);
  const { sendingId } = await createMessage(c, 'generic', {
    channels: [{ type: 'email', from_email: 'n@example.com', template: inline('email', { subject: 'Own', body: '<p>Hi</p>', preheader: 'Pre' }, outer.body.template.id) }],
    sending: { schedule: { type: 'immediate' }, recipients: [{ member_id: m }] },
  });
  await ctx.engine.drain();
  const [line] = (await outboxOf(sendingId!)) as any[];
  assert.deepEqual([line.content.subject, line.content.html, line.content.preheader], ['Fixed', '<main><p>Hi</p></main><i>Per</i>', 'Pre']);

  const del = await c.request('DELETE', `/v1/messages/templates/${wrappers.generic}`);
  assert.deepEqual([del.status, del.body], [405, { error: 'Template is used as a wrapper by another template and cannot be deleted' }]);
  // An earlier release's wrapper id is answered with the template it became.
  await ctx.db.query('INSERT INTO message_wrapper_ids (old_id, loyalty_club_id, template_id) VALUES ($1, $2, $3)', [900_000_000 + c.club.id, c.club.id, wrappers.generic]);
  const old = await c.request('GET', `/v1/messages/wrappers/${900_000_000 + c.club.id}`);
  assert.deepEqual([old.status, old.body.template.id, old.body.template.type], [200, wrappers.generic, 'generic']);
  assert.equal((await c.request('GET', `/v1/messages/wrappers/${wrappers.generic}`)).status, 404);
});

// ---------- 5. schedules and execution ----------

test('relative schedules: second … year (calendar months), at most 366 days', async () => {
  const c = await ctx.club();
  const at = async (inValue: string) => {
    const r = await send(c, { channels: [smsChannel('x')], sending: { schedule: { type: 'relative', in: inValue }, recipients: [{ msisdn: '4796000001' }] } });
    assert.equal(r.status, 200, `${inValue}: ${r.text}`);
    return new Date(r.body.message.latest_sending.scheduled_at);
  };
  const near = (d: Date, ms: number) => Math.abs(d.getTime() - (Date.now() + ms)) < 5_000;
  assert.ok(near(await at('30 seconds'), 30_000));
  assert.ok(near(await at('1 second'), 1_000));
  const months = await at('5 months');
  const expected = new Date();
  expected.setUTCMonth(expected.getUTCMonth() + 5);
  assert.ok(Math.abs(months.getTime() - expected.getTime()) < 3 * 86_400_000 + 5_000, months.toISOString());
  assert.ok((await at('1 year')).getUTCFullYear() === new Date().getUTCFullYear() + 1);
  const far = await send(c, { channels: [smsChannel('x')], sending: { schedule: { type: 'relative', in: '2 years' }, recipients: [{ msisdn: '4796000001' }] } });
  assert.deepEqual(far.body.details, { message: { sending: { schedule: { in: [{ error: 'less_or_equal_to', options: { number: 366 } }] } } } });
});

test('execution: preparing 5 minutes ahead, cancel at T−3 minutes → 200, never transmitted before T; scheduled → 405', async () => {
  const c = await ctx.club();
  const T = Date.now() + 3 * 60_000;
  const make = async (at: number) => {
    const { sendingId } = await createMessage(c, 'generic', { channels: [smsChannel('x')], sending: { schedule: { type: 'absolute', at: new Date(at).toISOString() }, recipients: [{ msisdn: '4797000001' }] } });
    return sendingId!;
  };
  const cancelled = await make(T);
  const held = await make(T);
  const later = await make(Date.now() + 10 * 60_000);
  ctx.engine.clock = () => new Date(T - 3 * 60_000);
  try {
    await ctx.engine.drain();
    assert.equal((await showSending(c, 'generic', later)).status, 'scheduled');
    const cancelLater = await c.request('PUT', `/v1/messages/generic/sendings/${later}/cancel`);
    assert.deepEqual([cancelLater.status, cancelLater.body], [405, { error: 'Sending is scheduled and cannot be cancelled' }]);
    const r = await c.request('PUT', `/v1/messages/generic/sendings/${cancelled}/cancel`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.sending.status, 'cancelled');
    const h = await showSending(c, 'generic', held);
    assert.deepEqual([h.status, h.dispatches_count], ['prepared', 1]);
    assert.equal((await outboxOf(held)).length, 0);
    ctx.engine.clock = () => new Date(T + 1_000);
    await ctx.engine.drain();
    assert.equal((await showSending(c, 'generic', held)).status, 'transmitted');
    assert.equal((await outboxOf(held)).length, 1);
  } finally {
    ctx.engine.clock = () => new Date();
  }
});

// ---------- 7. references and id bounds ----------

test('references that name nothing in this club are 422 at their field with MPC’s key', async () => {
  const c = await ctx.club();
  const other = await ctx.club();
  const theirs = await other.request('POST', '/v1/messages/templates', { body: { template: { name: 't', type: 'plain', content: { body: 'b' } } } });
  const push = await c.request('POST', '/v1/messages/templates', { body: { template: { name: 'p', type: 'push', content: { body: 'b' } } } });
  const r = await send(c, {
    channels: [
      { type: 'sms', template: { type: 'reference', id: theirs.body.template.id } },
      { type: 'email', from_email: 'a@example.com', template: { type: 'reference', id: push.body.template.id } },
    ],
    sending: { draft: true, audience: { type: 'reference', id: MAX_ID } },
  });
  assert.equal(r.status, 422);
  assert.deepEqual(r.body.details, {
    message: {
      channels: { 0: { template: { id: [{ error: 'template_does_not_exist' }] } }, 1: { template: { id: [{ error: 'template_does_not_match_channel', options: { channel: 'email' } }] } } },
      sending: { audience: { id: [{ error: 'referenced_audience_must_exist' }] } },
    },
  });
  const campaign = await c.request('POST', '/v1/messages/campaigns', { body: { message: { name: 'x', campaign_id: 12345678, channels: [smsChannel('x')] } } });
  assert.deepEqual(campaign.body.details, { message: { campaign_id: [{ error: 'does_not_exist' }] } });
});

/** Every integer id field of every request body in /openapi.json: (method, path, field path). */
function idFields(spec: any): Array<{ method: string; path: string; field: Array<string | number> }> {
  const out: Array<{ method: string; path: string; field: Array<string | number> }> = [];
  const walk = (schema: any, at: Array<string | number>, method: string, path: string) => {
    if (!schema || typeof schema !== 'object') return;
    const types = [schema.type].flat();
    const name = at[at.length - 1];
    if (types.includes('integer') && typeof name === 'string' && (name === 'id' || name.endsWith('_id'))) out.push({ method, path, field: at });
    for (const [k, v] of Object.entries(schema.properties ?? {})) walk(v, [...at, k], method, path);
    if (schema.items) walk(schema.items, [...at, 0], method, path);
    for (const branch of schema.anyOf ?? []) walk(branch, at, method, path);
  };
  for (const [path, ops] of Object.entries<any>(spec.paths)) {
    for (const [method, op] of Object.entries<any>(ops)) {
      const body = op.requestBody?.content?.['application/json']?.schema;
      if (body) walk(body, [], method.toUpperCase(), path);
    }
  }
  return out;
}

test('hostile ids in bodies: 2^63, 1e308, -1, 0, "12" for every integer id field /openapi.json declares', async () => {
  const c = await ctx.club();
  const spec = (await ctx.fetch('GET', '/openapi.json')).body;
  const fields = idFields(spec).filter((f) => f.path.startsWith('/v1/messages') || f.path.startsWith('/v1/audiences') || f.path.startsWith('/v1/sms_sender'));
  assert.ok(fields.length >= 8, JSON.stringify(fields));
  const cases: Array<[string, unknown]> = [
    ['9223372036854775808', { error: 'less_or_equal_to', options: { number: MAX_ID } }],
    ['1e308', { error: 'less_or_equal_to', options: { number: MAX_ID } }],
    ['-1', { error: 'greater_or_equal_to', options: { number: 1 } }],
    ['0', { error: 'greater_or_equal_to', options: { number: 1 } }],
    ['"12"', { error: 'not_an_integer' }],
  ];
  for (const f of fields) {
    const url = f.path.replace('{service}', 'generic').replace(/\{[^}]+\}/g, '1');
    for (const [raw, leaf] of cases) {
      // The body holds only that field (other errors may come too: only this leaf is looked at).
      let text = '__V__';
      for (const key of [...f.field].reverse()) text = typeof key === 'number' ? `[${text}]` : `{${JSON.stringify(key)}:${text}}`;
      const res = await c.request(f.method, url, { raw: text.replace('__V__', raw) });
      assert.equal(res.status, 422, `${f.method} ${f.path} ${f.field.join('.')} = ${raw}: ${res.text}`);
      let node: any = res.body.details;
      for (const key of f.field) node = node?.[String(key)];
      assert.deepEqual(node, [leaf], `${f.method} ${f.path} ${f.field.join('.')} = ${raw}: ${JSON.stringify(res.body.details)}`);
    }
  }
});

// ---------- 8. the 422 leaf ----------

test('422 leaves are {error, options, value, message} with the submitted value', async () => {
  const c = await ctx.club();
  const res = await c.request('POST', '/v1/messages/campaigns', { body: { message: { name: 5, campaign_id: '12', channels: [smsChannel('x'.repeat(10) + '{% if %}')] } } });
  assert.equal(res.status, 422);
  assert.deepEqual(JSON.parse(res.text).details.message, {
    name: [{ error: 'invalid', options: { format: 'string' }, value: 5, message: 'is invalid' }],
    campaign_id: [{ error: 'not_an_integer', options: {}, value: '12', message: 'must be an integer' }],
  });
  const liquid = await send(c, { channels: [smsChannel('{% if %}')] });
  const leaf = JSON.parse(liquid.text).details.message.channels[0].template.definition.content.body[0];
  assert.deepEqual(Object.keys(leaf), ['error', 'options', 'value', 'message']);
  assert.deepEqual([leaf.error, leaf.value], ['liquid_syntax_error', '{% if %}']);
  const long = await send(c, { name: 'y'.repeat(300) });
  assert.deepEqual(JSON.parse(long.text).details.message.name, [{ error: 'too_long', options: { max_length: 255 }, value: `${'y'.repeat(200)}…`, message: 'is too long (maximum is 255)' }]);
});

// ---------- 9. settings and permits ----------

test('settings in MPC’s shape; MPC’s permits and Hei’s earlier names both open a route, an alias never opens another', async () => {
  const c = await ctx.club();
  await ctx.db.query(
    `UPDATE loyalty_clubs SET messaging_settings = $2 WHERE id = $1`,
    [c.club.id, JSON.stringify({ channels: { sms: { enabled: true, default_sender: { type: 'alphanumeric', value: 'Mall' } }, email: { enabled: false, from_email: 'x@example.com' }, push: { enabled: true, android_app_id: 'no.mall.app', ios_app_id: '123' } } })],
  );
  for (const permit of ['Messages:Api:Settings:Show', 'Messages:Api:Settings:Get']) {
    const res = await c.request('GET', '/v1/messages/settings', { token: await c.tokenWith([permit]) });
    assert.equal(res.status, 200, permit);
    assert.deepEqual(res.body.settings.channels, { sms: { sender_type: 'alphanumeric', sender_value: 'Mall' }, email: null, push: { android_app_id: 'no.mall.app', ios_app_id: '123' } });
    assert.deepEqual(Object.keys(res.body.settings), ['channels', 'transports', 'shortener']);
  }
  const { sendingId } = await createMessage(c, 'generic', { channels: [smsChannel('x')], sending: { draft: true, recipients: [{ msisdn: '4798000001' }] } });
  const cancelOnly = await c.tokenWith(['Messages:Api:Sendings:Cancel']);
  const update = await c.tokenWith(['Messages:Api:Sendings:Update']);
  assert.equal((await c.request('PUT', `/v1/messages/generic/sendings/${sendingId}`, { token: cancelOnly, body: { sending: { draft: true } } })).status, 403);
  assert.equal((await c.request('PUT', `/v1/messages/generic/sendings/${sendingId}/cancel`, { token: cancelOnly })).status, 405); // past the permit
  assert.equal((await c.request('PUT', `/v1/messages/generic/sendings/${sendingId}/cancel`, { token: update })).status, 405);
  assert.equal((await c.request('GET', '/v1/messages/generic', { token: await c.tokenWith(['Messages:Api:Messages:List']) })).status, 200);
  assert.equal((await c.request('GET', '/v1/messages/generic', { token: await c.tokenWith(['Messages:Api:Messages:Index']) })).status, 200);
  const dispatches = `/v1/messages/generic/sendings/${sendingId}/dispatches`;
  assert.equal((await c.request('GET', dispatches, { token: await c.tokenWith(['Messages:Api:Dispatches:List']) })).status, 200);
  assert.equal((await c.request('GET', `${dispatches}/members`, { token: await c.tokenWith(['Messages:Api:Dispatches:List']) })).status, 403);
  assert.equal((await c.request('GET', `${dispatches}/members`, { token: await c.tokenWith(['Messages:Api:Dispatches:Members:Index']) })).status, 200);
});

// ---------- 10. dispatches ----------

test('dispatches as MPC lists them: fields, content as handed over, filters, dispatch members', async () => {
  const c = await ctx.club();
  const [m] = await insertMembers(ctx.db, c.club.id, [{ first_name: 'Eva', msisdn: '4799000001', push_token: 'tok-eva' }]);
  const { sendingId } = await createMessage(c, 'generic', {
    channels: [smsChannel('Hi {{ member.first_name }}')],
    sending: { schedule: { type: 'immediate' }, recipients: [{ member_id: m }, { msisdn: '4799000002' }, { email: 'no-sms@example.com', msisdn: '4799000003' }] },
  });
  await ctx.engine.drain();
  const base = `/v1/messages/generic/sendings/${sendingId}/dispatches`;
  const res = await c.request('GET', `${base}?member_id=${m}`);
  assert.equal(res.status, 200, res.text);
  const [d] = res.body.dispatches;
  assert.deepEqual(Object.keys(d), [
    'id', 'type', 'content', 'member_id', 'msisdn', 'email', 'app_token', 'transmission_status', 'delivery_status', 'external_delivery_status',
    'scheduled_at', 'transmitted_at', 'delivered_at', 'cleaned_at', 'created_at', 'updated_at',
    'sending_id', 'status', 'skip_reason', 'error', 'provider_id', 'attempts', 'failed_at',
  ]);
  assert.deepEqual(
    [d.type, d.content, d.member_id, d.msisdn, d.app_token, d.transmission_status, d.delivery_status, d.cleaned_at, d.status],
    ['sms', { body: 'Hi Eva' }, m, '4799000001', null, 'transmitted', 'pending', null, 'sent'],
  );
  assert.equal(d.transmitted_at, (await dispatchesOf(ctx.db, sendingId!)).find((x) => x.member_id === m).sent_at.toISOString());
  assert.equal((await c.request('GET', `${base}?transmission_status=transmitted`)).body.pagination_info.total_count, 3);
  assert.equal((await c.request('GET', `${base}?transmission_status=failed`)).body.pagination_info.total_count, 0);
  assert.deepEqual((await c.request('GET', `${base}?msisdn=4799000002`)).body.dispatches.map((x: any) => x.msisdn), ['4799000002']);
  assert.deepEqual((await c.request('GET', `${base}?email=no-sms@example.com`)).body.dispatches.map((x: any) => x.email), ['no-sms@example.com']);
  assert.equal((await c.request('GET', `${base}?delivery_status=nope`)).status, 422);
  const members = await c.request('GET', `${base}/members`);
  assert.deepEqual(members.body.dispatch_members, [{ id: m, type: 'sms', msisdn: '4799000001', email: null, app_tokens: ['tok-eva'] }]);
});

// ---------- 11. personal data ----------

test('deleting a member stops its pending dispatches and strips all of them; the retention job strips old ones in batches', async () => {
  const c = await ctx.club();
  const [gone, stays] = await insertMembers(ctx.db, c.club.id, [
    { first_name: 'Gone', msisdn: '4791100001' },
    { first_name: 'Stays', msisdn: '4791100002' },
  ]);
  const first = await createMessage(c, 'generic', { channels: [smsChannel('Hi {{ first_name }}')], sending: { schedule: { type: 'immediate' }, recipients: [{ member_id: gone, properties: { secret: 's' } }, { msisdn: '4791100009' }] } });
  await ctx.engine.drain();
  // A second sending, prepared but not yet transmitted.
  const second = await createMessage(c, 'generic', { channels: [smsChannel('x')], sending: { schedule: { type: 'absolute', at: new Date(Date.now() + 4 * 60_000).toISOString() }, recipients: [{ member_id: gone }, { member_id: stays }] } });
  await ctx.engine.drain();
  assert.equal((await showSending(c, 'generic', second.sendingId!)).status, 'prepared');
  const del = await c.request('DELETE', `/v3/${c.club.slug}/members/${gone}`);
  assert.ok(del.status === 200 || del.status === 204, del.text);
  const sent = (await dispatchesOf(ctx.db, first.sendingId!)).find((d) => d.recipient_key === `member:${gone}`);
  assert.deepEqual([sent.member_id, sent.msisdn, sent.email, sent.properties, sent.content, sent.status], [null, null, null, {}, null, 'sent']);
  assert.ok(sent.cleaned_at instanceof Date);
  const pending = (await dispatchesOf(ctx.db, second.sendingId!)).map((d) => [d.recipient_key, d.status, d.cleaned_at !== null]);
  assert.deepEqual(pending, [[`member:${gone}`, 'cancelled', true], [`member:${stays}`, 'pending', false]]);
  assert.equal((await showSending(c, 'generic', first.sendingId!)).members_count, 1); // still counted

  // Retention: this club keeps 30 days; a dispatch 31 days old is stripped, a fresh one is not.
  await ctx.db.query('UPDATE loyalty_clubs SET message_retention_days = 30 WHERE id = $1', [c.club.id]);
  await ctx.db.query(`UPDATE dispatches SET created_at = now() - interval '31 days' WHERE sending_id = $1 AND recipient_key = 'msisdn:4791100009'`, [first.sendingId]);
  let stripped = 0;
  for (let n = -1; n !== 0; ) stripped += n = await stripExpiredDispatches(ctx.db, new Date(), 1);
  assert.ok(stripped >= 1);
  const old = (await dispatchesOf(ctx.db, first.sendingId!)).find((d) => d.msisdn === null && d.member_id === null && d.recipient_key.startsWith('cleaned:'));
  assert.ok(old?.cleaned_at, 'the old bare dispatch is stripped, its address key replaced');
  assert.equal((await dispatchesOf(ctx.db, second.sendingId!)).find((d) => d.member_id === stays).msisdn, '4791100002');
});

// ---------- 12. services; 13. empty lists ----------

test('services campaigns_testing, tem_documents, tem_documents_reminders with their permits', async () => {
  const c = await ctx.club();
  const res = await c.request('GET', '/v1/messages/services');
  const byName = Object.fromEntries(res.body.services.map((s: any) => [s.name, s]));
  assert.deepEqual(byName.campaigns_testing, { name: 'campaigns_testing', permit: 'Messages:Api:Messages:UseService:CampaignsTesting', marketing: false });
  assert.deepEqual(byName.tem_documents, { name: 'tem_documents', permit: 'Messages:Api:Messages:UseService:TemDocuments', marketing: false });
  assert.deepEqual(byName.tem_documents_reminders, { name: 'tem_documents_reminders', permit: 'Messages:Api:Messages:UseService:TemDocumentsReminders', marketing: false });
  const without = await c.tokenWith(['Messages:Api:Messages:List']);
  assert.equal((await c.request('GET', '/v1/messages/tem_documents', { token: without })).status, 403);
  const withIt = await c.tokenWith(['Messages:Api:Messages:List', 'Messages:Api:Messages:UseService:TemDocuments']);
  assert.equal((await c.request('GET', '/v1/messages/tem_documents', { token: withIt })).status, 200);
});

test('an empty list: total_pages 0, is_last_page true, is_out_of_range false', async () => {
  const c = await ctx.club();
  const res = await c.request('GET', '/v1/messages/tem_documents_reminders');
  assert.deepEqual(res.body, {
    messages: [],
    pagination_info: { total_count: 0, per_page: 100, total_pages: 0, current_page: 1, next_page: null, prev_page: null, is_first_page: true, is_last_page: true, is_out_of_range: false },
  });
});
