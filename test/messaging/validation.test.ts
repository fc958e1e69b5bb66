// Bad input: every messaging validation key in its exact tree position, wrong enums, templates
// that do not parse, unknown fields, oversized and unparsable bodies. Never a 500.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp } from '../helpers.ts';
import { createMessage, createSending, emailChannel, insertMember, invalid, pushChannel, setMemberSchema, smsChannel } from './support.ts';

const ctx = await startTestApp();

async function post(c: Awaited<ReturnType<typeof ctx.newClub>>, message: unknown, service = 'generic') {
  return c.request('POST', `/v1/messages/${service}`, { body: { message } });
}

test('channels: sender rules at channels[i].sender.value', async () => {
  const c = await ctx.newClub();
  const cases: Array<[unknown, object]> = [
    [{ type: 'alphanumeric', value: 'ABCDEFGHIJKL' }, [{ error: 'too_long', options: { max_length: 11 } }]],
    [{ type: 'alphanumeric', value: 'A' }, [{ error: 'too_short', options: { min_length: 2 } }]],
    [{ type: 'alphanumeric', value: '' }, [{ error: 'blank' }]],
    [{ type: 'alphanumeric', value: 'Mall<3' }, [{ error: 'invalid_format', options: { format: '/^[A-Za-z0-9 .&+_-]+$/' } }]],
    [{ type: 'international', value: '+4740769126' }, [{ error: 'invalid_msisdn' }]],
    [{ type: 'international', value: '12345' }, [{ error: 'invalid_msisdn' }]],
  ];
  for (const [sender, errors] of cases) {
    const res = await post(c, { name: 'x', channels: [emailChannel(), smsChannel('Hi', { sender })] });
    assert.equal(res.status, 422, JSON.stringify(sender));
    assert.deepEqual(res.body, invalid({ message: { channels: { '1': { sender: { value: errors } } } } }), JSON.stringify(sender));
  }
  for (const sender of [{ type: 'alphanumeric', value: 'AB' }, { type: 'alphanumeric', value: 'Infinity Ma' }, { type: 'international', value: '4740769126' }]) {
    const res = await post(c, { name: 'x', channels: [smsChannel('Hi', { sender })] });
    assert.equal(res.status, 200, JSON.stringify(sender));
    assert.deepEqual(res.body.message.channels[0].sender, sender);
  }
  const res = await post(c, { name: 'x', channels: [smsChannel('Hi', { sender: { type: 'shortcode', value: '1234' } })] });
  assert.deepEqual(res.body, invalid({ message: { channels: { '0': { sender: { type: [{ error: 'inclusion', options: { in: ['alphanumeric', 'international'] } }] } } } } }));
});

test('channels: not_configured, types_must_be_unique (with child errors kept), defaults from the club', async () => {
  const c = await ctx.newClub({ messagingSettings: { channels: { sms: { enabled: true } }, shortener: { enabled: false } } });
  let res = await post(c, { name: 'x', channels: [smsChannel('Hi', { sender: { type: 'alphanumeric', value: 'Mall' } }), emailChannel({ from_email: 'a@example.com' })] });
  assert.deepEqual(res.body, invalid({ message: { channels: { '1': { type: [{ error: 'not_configured' }] } } } }));
  // no default sender configured → the sender must be given
  res = await post(c, { name: 'x', channels: [smsChannel()] });
  assert.deepEqual(res.body, invalid({ message: { channels: { '0': { sender: [{ error: 'blank' }] } } } }));
  res = await post(c, { name: 'x', channels: [smsChannel('Hi', { sender: { type: 'alphanumeric', value: 'Mall' } }), smsChannel('{{ x | nope }}')] });
  assert.deepEqual(
    res.body,
    invalid({
      message: {
        channels: {
          '1': { template: { definition: { content: { body: [{ error: 'liquid_syntax_error', options: { syntax_error: 'undefined filter: nope, line:1, col:1' } }] } } }, sender: [{ error: 'blank' }] },
          base: [{ error: 'types_must_be_unique' }],
        },
      },
    }),
  );
  const d = await ctx.newClub();
  res = await post(d, { name: 'x', channels: [emailChannel(), smsChannel()] });
  assert.equal(res.status, 200);
  assert.equal(res.body.message.channels[0].from_email, 'news@infinity-mall.example');
  assert.equal(res.body.message.channels[0].from_name, 'Infinity Mall');
  assert.deepEqual(res.body.message.channels[1].sender, { type: 'alphanumeric', value: 'InfinityMal' });
  res = await post(d, { name: 'x', channels: [emailChannel({ from_email: 'Shop@Example.com', from_name: 'Shop' })] });
  assert.equal(res.body.message.channels[0].from_email, 'shop@example.com');
  res = await post(d, { name: 'x', channels: [emailChannel({ from_email: 'not-an-address' })] });
  assert.deepEqual(res.body, invalid({ message: { channels: { '0': { from_email: [{ error: 'invalid_format', options: { format: 'email' } }] } } } }));
});

test('templates: type vs channel, content fields per type, Liquid syntax, reference/inline modes', async () => {
  const c = await ctx.newClub();
  const inline = (type: string, definition: unknown) => ({ type, template: { type: 'inline', definition } });
  const cases: Array<[unknown, unknown]> = [
    [inline('sms', { type: 'email', content: { subject: 's', body: 'b' } }), { template: { definition: { type: [{ error: 'template_does_not_match_channel', options: { channel: 'sms' } }] } } }],
    [inline('push', { type: 'bee_email', content: { subject: 's', body: 'b', json: {} } }), { template: { definition: { type: [{ error: 'template_does_not_match_channel', options: { channel: 'push' } }] } } }],
    [inline('email', { type: 'push', content: { body: 'b' } }), { template: { definition: { type: [{ error: 'template_does_not_match_channel', options: { channel: 'email' } }] } } }],
    [inline('sms', { type: 'plain', content: {} }), { template: { definition: { content: { body: [{ error: 'blank' }] } } } }],
    [inline('sms', { type: 'plain', content: { body: 'b', subject: 's' } }), { template: { definition: { content: { subject: [{ error: 'not_permitted' }] } } } }],
    [inline('email', { type: 'bee_email', content: { body: 'b' } }), { template: { definition: { content: { bee_json: [{ error: 'blank' }] } } } }],
    [inline('email', { type: 'bee_email', content: { subject: 's', body: 'b' } }), { template: { definition: { content: { bee_json: [{ error: 'blank' }] } } } }],
    [inline('email', { type: 'email', content: { subject: '{{ a', body: 'b' } }), { template: { definition: { content: { subject: [{ error: 'liquid_syntax_error', options: { syntax_error: 'output "{{ a" not closed, line:1, col:1' } }] } } } }],
    [inline('sms', { type: 'plain', content: { body: '{% for x in y %}' } }), { template: { definition: { content: { body: [{ error: 'liquid_syntax_error', options: { syntax_error: 'tag {% for x in y %} not closed, line:1, col:1' } }] } } } }],
    [inline('sms', { type: 'plain', content: { body: '{% include "x" %}' } }), { template: { definition: { content: { body: [{ error: 'liquid_tag_not_allowed', options: { tag: 'include' } }] } } } }],
    [{ type: 'sms', template: { type: 'inline' } }, { template: { definition: [{ error: 'blank' }] } }],
    [{ type: 'sms', template: { type: 'reference' } }, { template: { id: [{ error: 'blank' }] } }],
    [{ type: 'sms', template: { type: 'reference', id: 1, definition: { type: 'plain', content: { body: 'x' } } } }, { template: { definition: [{ error: 'not_permitted' }] } }],
    [{ type: 'sms', template: { type: 'linked', id: 1 } }, { template: { type: [{ error: 'inclusion', options: { in: ['inline', 'reference'] } }] } }],
    [{ type: 'sms' }, { template: [{ error: 'blank' }] }],
    [inline('sms', { type: 'html', content: { body: 'x' } }), { template: { definition: { type: [{ error: 'inclusion', options: { in: ['plain', 'email', 'bee_email', 'push', 'generic'] } }] } } }],
  ];
  for (const [channel, expected] of cases) {
    const res = await post(c, { name: 'x', channels: [channel] });
    assert.equal(res.status, 422, JSON.stringify(channel));
    assert.deepEqual(res.body, invalid({ message: { channels: { '0': expected } } }), JSON.stringify(channel));
  }
});

test('message fields: blank, unknown, wrong types, campaign rules', async () => {
  const c = await ctx.newClub();
  let res = await post(c, {});
  assert.deepEqual(res.body, invalid({ message: { name: [{ error: 'blank' }], channels: [{ error: 'blank' }] } }));
  res = await post(c, { name: 'x', channels: [], foo: 1, shorten_urls: 'yes' });
  assert.deepEqual(res.body, invalid({
    message: {
      foo: [{ error: 'not_permitted' }],
      shorten_urls: [{ error: 'invalid', options: { format: 'boolean' } }],
      channels: [{ error: 'too_short', options: { min_length: 1 } }],
    },
  }));
  res = await c.request('POST', '/v1/messages/generic', { body: { msg: {} } });
  assert.deepEqual(res.body, invalid({ msg: [{ error: 'not_permitted' }], message: [{ error: 'blank' }] }));
  res = await post(c, { name: 'x', channels: [smsChannel()], campaign_id: 5 }, 'tenants');
  assert.deepEqual(res.body, invalid({ message: { campaign_id: [{ error: 'is_relevant_only_for_campaign_service' }] } }));
  res = await post(c, { name: 'x', channels: [smsChannel()], campaign_id: null }, 'tenants');
  assert.equal(res.status, 200);
  const m = res.body.message;
  res = await c.request('PUT', `/v1/messages/tenants/${m.id}`, { body: { message: { campaign_id: 3 } } });
  assert.deepEqual(res.body, invalid({ message: { campaign_id: [{ error: 'is_relevant_only_for_campaign_service' }] } }));
  res = await c.request('PUT', `/v1/messages/tenants/${m.id}`, { body: { message: { sending: {} } } });
  assert.deepEqual(res.body, invalid({ message: { sending: [{ error: 'not_permitted' }] } }));
  res = await post(c, { name: 'x', channels: [smsChannel()], campaign_id: 999999 }, 'campaigns');
  assert.deepEqual(res.body, invalid({ message: { campaign_id: [{ error: 'does_not_exist' }] } }));
});

test('sendings: base rule, schedule, audience, recipients, enums, at both payload positions', async () => {
  const c = await ctx.newClub();
  await setMemberSchema(ctx, c, { first_name: { type: 'string' } });
  const m = await createMessage(c, { channels: [smsChannel(), emailChannel(), pushChannel()] });
  const member = await insertMember(ctx, c, { email: 'm@example.com' });
  const sending = (s: unknown) => c.request('POST', `/v1/messages/generic/${m.id}/sendings`, { body: { sending: s } });

  let res = await sending({});
  assert.deepEqual(res.body, invalid({ sending: { base: [{ error: 'sending_must_have_audience_or_recipients' }] } }));
  res = await sending({ recipients: [] });
  assert.deepEqual(res.body, invalid({ sending: { base: [{ error: 'sending_must_have_audience_or_recipients' }] } }));
  res = await post(c, { name: 'x', channels: [smsChannel()], sending: { draft: true } });
  assert.deepEqual(res.body, invalid({ message: { sending: { base: [{ error: 'sending_must_have_audience_or_recipients' }] } } }));

  res = await sending({ schedule: { type: 'absolute' }, recipients: [{ email: 'a@example.com' }] });
  assert.deepEqual(res.body, invalid({ sending: { schedule: { at: [{ error: 'blank' }] } } }));
  res = await sending({ schedule: { type: 'absolute', at: 'tomorrow' }, recipients: [{ email: 'a@example.com' }] });
  assert.deepEqual(res.body, invalid({ sending: { schedule: { at: [{ error: 'invalid_format', options: { format: 'date-time' } }] } } }));
  res = await sending({ schedule: { type: 'relative' }, recipients: [{ email: 'a@example.com' }] });
  assert.deepEqual(res.body, invalid({ sending: { schedule: { in: [{ error: 'blank' }] } } }));
  res = await sending({ schedule: { type: 'immediate', at: '2030-01-01T00:00:00Z' }, recipients: [{ email: 'a@example.com' }] });
  assert.deepEqual(res.body, invalid({ sending: { schedule: { at: [{ error: 'not_permitted' }] } } }));
  res = await sending({ priority: 11, channels_preference: ['sms', 'fax'], recipients: [{ email: 'a@example.com' }] });
  assert.deepEqual(res.body, invalid({
    sending: { priority: [{ error: 'less_or_equal_to', options: { number: 10 } }], channels_preference: { '1': [{ error: 'inclusion', options: { in: ['sms', 'email', 'push'] } }] } },
  }));
  res = await sending({ channels_preference: ['sms', 'sms'], recipients: [{ email: 'a@example.com' }] });
  assert.deepEqual(res.body, invalid({ sending: { channels_preference: [{ error: 'must_be_unique' }] } }));

  res = await sending({ audience: { type: 'inline' } });
  assert.deepEqual(res.body, invalid({ sending: { audience: { conditions: [{ error: 'blank' }] } } }));
  res = await sending({ audience: { type: 'inline', conditions: [] } });
  assert.deepEqual(res.body, invalid({ sending: { audience: { conditions: [{ error: 'too_short', options: { min_length: 1 } }] } } }));
  res = await sending({ audience: { type: 'reference' } });
  assert.deepEqual(res.body, invalid({ sending: { audience: { id: [{ error: 'blank' }] } } }));
  res = await sending({ audience: { type: 'inline', conditions: [{ condition_group: 'member_properties', field: 'shoe_size', operator: 'match', value: 1 }] } });
  assert.equal(res.status, 422);
  assert.equal(res.body.details.sending.audience.conditions['0'].field[0].error, 'inclusion');
  res = await post(c, { name: 'x', channels: [smsChannel()], sending: { audience: { type: 'inline', conditions: [{ condition_group: 'nowhere', field: 'x', operator: 'match', value: 1 }] } } });
  assert.equal(res.body.details.message.sending.audience.conditions['0'].condition_group[0].error, 'inclusion');
  res = await sending({ audience: { type: 'reference', id: 987654 } });
  assert.deepEqual(res.body, invalid({ sending: { audience: { id: [{ error: 'referenced_audience_must_exist' }] } } }));

  res = await sending({ recipients: [{ properties: { a: 1 } }, { member_id: 999999 }, { member_id: member }, { email: 'bad' }, { msisdn: '+4712345678' }, { fax: '1' }] });
  assert.deepEqual(res.body, invalid({
    sending: {
      recipients: {
        '3': { email: [{ error: 'invalid_format', options: { format: 'email' } }] },
        '4': { msisdn: [{ error: 'invalid_msisdn' }] },
        '5': { fax: [{ error: 'not_permitted' }] },
      },
    },
  }));
  res = await sending({ recipients: [{ properties: { a: 1 } }, { member_id: 999999 }, { member_id: member }] });
  assert.deepEqual(res.body, invalid({
    sending: { recipients: { '0': { base: [{ error: 'recipient_must_have_member_id_or_address' }] }, '1': { member_id: [{ error: 'does_not_exist' }] } } },
  }));
  res = await sending({ recipients: [{ member_id: member }, { msisdn: '4740769126' }, { push_token: 'tok' }, { email: 'A@Example.com' }], properties: { shop: 'X' } });
  assert.equal(res.status, 200);
  assert.equal(res.body.sending.recipients_count, 4);
  const { rows } = await ctx.db.query('SELECT position, member_id, email, msisdn, push_token FROM sending_recipients WHERE sending_id = $1 ORDER BY position', [res.body.sending.id]);
  assert.deepEqual(rows, [
    { position: 0, member_id: member, email: null, msisdn: null, push_token: null },
    { position: 1, member_id: null, email: null, msisdn: '4740769126', push_token: null },
    { position: 2, member_id: null, email: null, msisdn: null, push_token: 'tok' },
    { position: 3, member_id: null, email: 'a@example.com', msisdn: null, push_token: null },
  ]);
});

test('update sending: recipients replaced, [] clears (then the base rule applies), audience null', async () => {
  const c = await ctx.newClub();
  const m = await createMessage(c, { channels: [smsChannel(), emailChannel()] });
  const s = await createSending(c, m.id, { recipients: [{ email: 'a@example.com' }, { email: 'b@example.com' }] });
  const put = (sending: unknown) => c.request('PUT', `/v1/messages/generic/sendings/${s.id}`, { body: { sending } });
  let res = await put({ recipients: [{ email: 'c@example.com' }] });
  assert.equal(res.body.sending.recipients_count, 1);
  const { rows } = await ctx.db.query('SELECT email FROM sending_recipients WHERE sending_id = $1', [s.id]);
  assert.deepEqual(rows, [{ email: 'c@example.com' }]);
  res = await put({ recipients: [] });
  assert.deepEqual(res.body, invalid({ sending: { base: [{ error: 'sending_must_have_audience_or_recipients' }] } }));
  res = await put({ recipients: [], audience: { type: 'inline', conditions: [{ condition_group: 'member', field: 'id', operator: 'gt', value: 0 }] } });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.sending.recipients_count, 0);
  res = await put({ audience: null });
  assert.deepEqual(res.body, invalid({ sending: { base: [{ error: 'sending_must_have_audience_or_recipients' }] } }));
  res = await put({ properties: { promo: 'X' } });
  assert.equal(res.status, 200);
  assert.deepEqual(res.body.sending.properties, { promo: 'X' });
  assert.equal(res.body.sending.audience.type, 'inline');
});

test('bodies: unparsable 400 (empty), oversized 413, wrong content type 415, never a 500', async () => {
  const c = await ctx.newClub();
  let res = await c.request('POST', '/v1/messages/generic', { raw: '{"message":' });
  assert.equal(res.status, 400);
  assert.equal(res.text, '');
  res = await c.request('POST', '/v1/messages/generic', { body: { message: { name: 'x'.repeat(6 * 1024 * 1024) } } });
  assert.equal(res.status, 413);
  assert.deepEqual(res.body, { error: 'Request body is too large' });
  res = await c.request('POST', '/v1/messages/generic', { raw: 'name=x', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
  assert.equal(res.status, 415);
  res = await c.request('POST', '/v1/messages/generic', { body: { message: { name: 'x', channels: [smsChannel('x'.repeat(200_001))] } } });
  assert.equal(res.status, 422);
  assert.equal(res.body.details.message.channels['0'].template.definition.content.body[0].error, 'too_long');
  res = await c.request('POST', '/v1/messages/generic', { body: { message: { name: 'x', channels: [smsChannel()], sending: { recipients: Array.from({ length: 10_001 }, () => ({ email: 'a@example.com' })) } } } });
  assert.equal(res.status, 422);
  assert.deepEqual(res.body.details.message.sending.recipients, [{ error: 'too_long', options: { max_length: 10000 } }]);
  // ids that are not numbers are simply not found
  for (const path of ['/v1/messages/generic/abc', '/v1/messages/generic/0', '/v1/messages/generic/99999999999999999999', '/v1/messages/generic/sendings/x', '/v1/messages/templates/x']) {
    res = await c.request('GET', path);
    assert.equal(res.status, 404, path);
  }
  res = await c.request('GET', '/v1/messages/generic?sendings_status=done&archived=maybe');
  assert.deepEqual(res.body, invalid({
    sendings_status: [{ error: 'inclusion', options: { in: ['draft', 'scheduled', 'finished'] } }],
    archived: [{ error: 'invalid', options: { format: 'boolean' } }],
  }));
  res = await c.request('PATCH', '/v1/messages/generic/1');
  assert.equal(res.status, 405);
});
