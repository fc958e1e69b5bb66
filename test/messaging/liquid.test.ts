// The shared Liquid engine: merge tags as in the docs, missing values empty, no file system,
// bounded output, wrappers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderContent } from '../../src/messaging/templates.ts';
import { hasContentSlot, MAX_OUTPUT_LENGTH, parseTemplate, RenderError, renderTemplate, renderWrapped } from '../../src/messaging/liquid.ts';

test('merge tags, filters and conditionals; a missing value renders empty', async () => {
  assert.equal(await renderTemplate('Hei {{name}}', { name: 'Piotr' }), 'Hei Piotr');
  assert.equal(await renderTemplate('Hei {{name}}!', {}), 'Hei !');
  assert.equal(await renderTemplate('{{ name | upcase }}{% if vip %} (VIP){% endif %}', { name: 'ola', vip: true }), 'OLA (VIP)');
});

test('syntax errors come back as values; unknown filters are errors at parse time', () => {
  assert.equal(parseTemplate('Hei {{name}}').ok, true);
  const bad = parseTemplate('{% if %}');
  assert.equal(bad.ok, false);
  assert.equal(parseTemplate('{{ x | nope }}').ok, false);
  assert.deepEqual(parseTemplate('x'.repeat(200_001)), { ok: false, error: 'too_long' });
});

test('no file system: include, render and layout find nothing', async () => {
  for (const source of ['{% include "/etc/passwd" %}', '{% render "../package.json" %}', '{% layout "x" %}body']) {
    await assert.rejects(renderTemplate(source, {}), RenderError, source);
  }
});

test('own properties only, output bounded', async () => {
  assert.equal(await renderTemplate('{{ o.constructor }}{{ o.__proto__ }}', { o: {} }), '');
  const half = 'x'.repeat(MAX_OUTPUT_LENGTH / 2 + 1);
  await assert.rejects(renderTemplate('{{ s }}{{ s }}', { s: half }), /rendered output longer than 500000 characters/);
  // a render that runs too long is stopped
  await assert.rejects(renderTemplate('{% for i in (1..100000000) %}{% endfor %}', {}), RenderError);
});

test('wrappers put the content into their slot', async () => {
  assert.equal(hasContentSlot('<p>{{ content }}</p>'), true);
  assert.equal(hasContentSlot('<p>{{content}}</p>'), true);
  assert.equal(hasContentSlot('<p>{{ contents }}</p>'), false);
  assert.equal(await renderWrapped('<p>{{ content }}</p><i>{{ shop }}</i>', 'Hei <b>', { shop: 'Mall' }), '<p>Hei <b></p><i>Mall</i>');
  assert.equal(await renderWrapped(null, 'plain', {}), 'plain');
});

test('renderContent: every content field rendered, the body wrapped', async () => {
  const out = await renderContent(
    { type: 'push', content: { subject: 'Hi {{ first_name }}', body: 'Points: {{ points }}', url: 'https://x.example/{{ member_id }}', data: { k: '{{ member_id }}' } } },
    '{{ content }} — {{ shop }}',
    { first_name: 'Ola', points: 5, member_id: 7, shop: 'Mall' },
  );
  assert.deepEqual(out, { body: 'Points: 5 — Mall', subject: 'Hi Ola', url: 'https://x.example/7', data: { k: '7' } });
});
