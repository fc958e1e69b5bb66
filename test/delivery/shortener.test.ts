// The shortener: URL rewriting of rendered content, one code per (sending, URL) or per
// (dispatch, URL) when tracked, the redirect, click recording with the bot flag, and 404.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findUrls, rewriteUrls } from '../../src/shortener/links.ts';
import { EMAIL_CHANNEL, SMS_CHANNEL, createMessage, insertMembers, showSending, startDeliveryApp } from './helpers.ts';

const BASE = 'https://s.hei.test';
const ctx = await startDeliveryApp({ shortenerBaseUrl: BASE });
const everyone = { type: 'inline', conditions: [{ condition_group: 'member_properties', field: 'city', operator: 'match', value: 'Oslo' }] };
const CODE = new RegExp(`${BASE.replace(/\./g, '\\.')}/([0-9A-Za-z]{7,})`, 'g');

const visit = (code: string, init: { method?: string; headers?: Record<string, string> } = {}) =>
  fetch(`${ctx.baseUrl}/${code}`, { method: init.method ?? 'GET', headers: { 'user-agent': 'Mozilla/5.0 (iPhone) Safari', ...init.headers }, redirect: 'manual' });

async function send(c: any, message: Record<string, unknown>) {
  const { sendingId } = await createMessage(c, 'generic', { ...message, sending: { schedule: { type: 'immediate' }, audience: everyone } });
  await ctx.engine.drain();
  return { sendingId: sendingId!, lines: (await ctx.outbox()).filter((l) => l.sending_id === sendingId) };
}

test('URLs found in text and HTML, punctuation left out', () => {
  assert.deepEqual(findUrls('see https://a.no/x?y=1. and (http://b.no/z) or "https://c.no/q"'), ['https://a.no/x?y=1', 'http://b.no/z', 'https://c.no/q']);
  const out = rewriteUrls('<a href="https://a.no/?x=1&amp;y=2">https://a.no/?x=1&amp;y=2</a>', true, BASE, (t) => (t === 'https://a.no/?x=1&y=2' ? 'Abc12345' : undefined));
  assert.equal(out, `<a href="${BASE}/Abc12345">${BASE}/Abc12345</a>`);
});

test('shorten_urls: every http(s) URL becomes a short link, one code per (sending, URL); the link redirects and counts clicks', async () => {
  const c = await ctx.club();
  await insertMembers(ctx.db, c.club.id, [
    { first_name: 'Anna', msisdn: '4794000001', city: 'Oslo' },
    { first_name: 'Bo', msisdn: '4794000002', city: 'Oslo' },
  ]);
  const { sendingId, lines } = await send(c, { channels: [SMS_CHANNEL('Hei {{first_name}}: https://shop.example.com/offer?a=1&b=2. More: http://example.org/x')] });
  assert.equal(lines.length, 2);
  const codes = lines.map((l) => [...(l.content as any).text.matchAll(CODE)].map((m) => m[1]));
  assert.equal(codes[0].length, 2);
  assert.deepEqual(codes[0], codes[1], 'same URL, same sending → same code');
  assert.ok(codes[0].every((code) => /^[0-9A-Za-z]{8}$/.test(code)));
  assert.match((lines[0].content as any).text, /^Hei (Anna|Bo): https:\/\/s\.hei\.test\/\w{8}\. More: https:\/\/s\.hei\.test\/\w{8}$/);

  const [offer] = codes[0];
  const res = await visit(offer);
  assert.equal(res.status, 302);
  assert.equal(res.headers.get('location'), 'https://shop.example.com/offer?a=1&b=2');
  await visit(offer); // the same visitor again
  await visit(offer, { headers: { 'user-agent': 'Slackbot-LinkExpanding 1.0' } });
  await visit(offer, { method: 'HEAD' });
  await visit(offer, { headers: { 'sec-purpose': 'prefetch' } });
  const { rows } = await ctx.db.query(
    `SELECT c.bot, c.user_agent, c.dispatch_id, c.clicked_at FROM short_link_clicks c JOIN short_links l ON l.id = c.link_id WHERE l.code = $1 ORDER BY c.id`,
    [offer],
  );
  assert.deepEqual(rows.map((r) => r.bot), [false, false, true, true, true]);
  assert.equal(rows[0].user_agent, 'Mozilla/5.0 (iPhone) Safari');
  assert.equal(rows[0].dispatch_id, null, 'not tracked');
  assert.ok(rows[0].clicked_at instanceof Date);
  const s = await showSending(c, 'generic', sendingId);
  assert.equal(s.stats.clicks, 2);
  assert.equal(s.stats.unique_clicks, 1);
});

test('track_in_shortener: one code per (dispatch, URL); the click names the dispatch; HTML links are rewritten', async () => {
  const c = await ctx.club();
  await insertMembers(ctx.db, c.club.id, [
    { first_name: 'Anna', email: 'anna@example.com', city: 'Oslo' },
    { first_name: 'Bo', email: 'bo@example.com', city: 'Oslo' },
  ]);
  const { sendingId, lines } = await send(c, {
    track_in_shortener: true,
    channels: [EMAIL_CHANNEL('<p>Hei {{first_name}} <a href="https://shop.example.com/?a=1&amp;b=2">shop</a></p>')],
  });
  const codes = lines.map((l) => [...(l.content as any).html.matchAll(CODE)].map((m) => m[1])[0]);
  assert.notEqual(codes[0], codes[1]);
  for (const l of lines) assert.ok((l.content as any).text.includes(BASE), 'text part rewritten too');
  const res = await visit(codes[0]);
  assert.equal(res.status, 302);
  assert.equal(res.headers.get('location'), 'https://shop.example.com/?a=1&b=2');
  const { rows } = await ctx.db.query(`SELECT c.dispatch_id FROM short_link_clicks c JOIN short_links l ON l.id = c.link_id WHERE l.code = $1`, [codes[0]]);
  assert.equal(rows[0].dispatch_id, lines[0].dispatch_id);
  await visit(codes[1]);
  const s = await showSending(c, 'generic', sendingId);
  assert.equal(s.stats.unique_clicks, 2, 'two recipients clicked');
});

test('shorten_urls false leaves URLs alone', async () => {
  const c = await ctx.club();
  await insertMembers(ctx.db, c.club.id, [{ first_name: 'Anna', msisdn: '4794000011', city: 'Oslo' }]);
  const { lines } = await send(c, { shorten_urls: false, channels: [SMS_CHANNEL('See https://example.com/a')] });
  assert.equal((lines[0].content as any).text, 'See https://example.com/a');
});

test('an unknown code is 404 with the error shape, never a redirect; other paths are untouched', async () => {
  const res = await visit('ZZZZZZZZ');
  assert.equal(res.status, 404);
  assert.equal(res.headers.get('location'), null);
  assert.deepEqual(await res.json(), { error: 'Link not found' });
  const short = await visit('abc');
  assert.equal(short.status, 404);
  assert.equal(short.headers.get('location'), null);
  const evil = await fetch(`${ctx.baseUrl}//evil.example.com`, { redirect: 'manual' });
  assert.equal(evil.headers.get('location'), null);
  assert.equal((await fetch(`${ctx.baseUrl}/health`)).status, 200);
});
