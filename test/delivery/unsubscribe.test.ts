// Unsubscribe links: signed per member dispatch, in the merge properties and (marketing e-mail)
// in List-Unsubscribe; GET shows a form and changes nothing, POST (RFC 8058 one-click) withdraws
// the channel's marketing consent.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { oneClickWarning, UnsubscribeLinks } from '../../src/delivery/unsubscribe.ts';
import { createMessage, dispatchesOf, EMAIL_CHANNEL, insertMembers, startDeliveryApp } from './helpers.ts';

const ctx = await startDeliveryApp();
after(() => ctx.engine.close());
const oslo = { type: 'inline', conditions: [{ condition_group: 'member_properties', field: 'city', operator: 'match', value: 'Oslo' }] };
const TEMPLATE = '<p>Hei {{first_name}}</p><a href="{{ unsubscribe_url }}">Unsubscribe</a>';
const consentOf = async (id: number) => (await ctx.db.query('SELECT consents FROM members WHERE id = $1', [id])).rows[0].consents.email_marketing?.status;

test('a marketing e-mail carries a signed link; GET asks, POST one-click withdraws the consent', async () => {
  const c = await ctx.club();
  const [member] = await insertMembers(ctx.db, c.club.id, [{ first_name: 'Ola', email: 'ola@example.com', city: 'Oslo', consents: ['email_marketing'] }]);
  const { sendingId } = await createMessage(c, 'campaigns', { channels: [EMAIL_CHANNEL(TEMPLATE)], sending: { schedule: { type: 'immediate' }, audience: oslo } });
  await ctx.engine.drain();
  const [d] = await dispatchesOf(ctx.db, sendingId!);
  assert.equal(d.status, 'sent');
  const line = (await ctx.outbox()).find((l) => l.dispatch_id === d.id)!;
  const url = (line.content as any).unsubscribeUrl as string;
  assert.match(url, /\/v1\/unsubscribe\/[0-9a-z]+\.[A-Za-z0-9_-]{22}$/);
  assert.ok((line.content as any).html.includes(`href="${url}"`), 'the merge property is the same link');
  const path = new URL(url).pathname;

  const page = await ctx.fetch('GET', path);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type')!, /text\/html/);
  assert.match(page.text, /<form method="post">/);
  assert.equal(await consentOf(member), true, 'a GET (a mail scanner) changes nothing');

  const res = await ctx.fetch('POST', path, { raw: 'List-Unsubscribe=One-Click', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
  assert.equal(res.status, 200);
  assert.match(res.text, /no longer receive marketing e-mails/);
  assert.equal(await consentOf(member), false);
  // Idempotent: a second click is fine.
  assert.equal((await ctx.fetch('POST', path, { raw: 'List-Unsubscribe=One-Click', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } })).status, 200);
});

test('forged, altered or non-member links are 404 and change nothing', async () => {
  const c = await ctx.club();
  const { sendingId } = await createMessage(c, 'generic', {
    channels: [EMAIL_CHANNEL(TEMPLATE)],
    sending: { schedule: { type: 'immediate' }, recipients: [{ email: 'guest@example.com', properties: { first_name: 'Guest' } }] },
  });
  await ctx.engine.drain();
  const [d] = await dispatchesOf(ctx.db, sendingId!);
  const line = (await ctx.outbox()).find((l) => l.dispatch_id === d.id)!;
  assert.equal((line.content as any).unsubscribeUrl, null, 'no member, no link');
  assert.ok((line.content as any).html.includes('href=""'));

  const links = new UnsubscribeLinks('http://x');
  const token = links.token(d.id);
  assert.equal(links.read(token), d.id);
  for (const bad of [token, token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A'), `${(d.id + 1).toString(36)}.${token.split('.')[1]}`, 'nonsense']) {
    const res = await ctx.fetch('POST', `/v1/unsubscribe/${bad}`, { raw: '', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
    assert.deepEqual([res.status, res.body], [404, { error: 'Unsubscribe link not found' }], bad);
  }
});

test('a non-marketing message still offers the link as a merge property, without List-Unsubscribe', async () => {
  const c = await ctx.club();
  await insertMembers(ctx.db, c.club.id, [{ first_name: 'Kari', email: 'kari@example.com', city: 'Oslo' }]);
  const { sendingId } = await createMessage(c, 'generic', { channels: [EMAIL_CHANNEL(TEMPLATE)], sending: { schedule: { type: 'immediate' }, audience: oslo } });
  await ctx.engine.drain();
  const [d] = await dispatchesOf(ctx.db, sendingId!);
  const line = (await ctx.outbox()).find((l) => l.dispatch_id === d.id)!;
  assert.equal((line.content as any).unsubscribeUrl, null);
  assert.match((line.content as any).html, /href="[^"]+\/v1\/unsubscribe\/[^"]+"/);
});

test('start-up warning: a plain-http public base while some club sends e-mail', async () => {
  const c = await ctx.club();
  await ctx.db.query(`INSERT INTO transport_configs (loyalty_club_id, channel, role, url_encrypted) VALUES ($1, 'email', 'primary', 'x')`, [c.club.id]);
  assert.match((await oneClickWarning(ctx.db, 'http://hei.example.com'))!, /not https.*RFC 8058/);
  assert.equal(await oneClickWarning(ctx.db, 'https://hei.example.com'), null);
  await ctx.db.query(`DELETE FROM transport_configs WHERE loyalty_club_id = $1`, [c.club.id]);
});
