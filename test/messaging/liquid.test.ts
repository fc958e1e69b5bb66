// The shared Liquid engine: merge tags as in the docs, missing values empty, no file system,
// bounded output, wrappers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileChannel, renderContent } from '../../src/delivery/render.ts';
import { MAX_OUTPUT_LENGTH, parseTemplate, RenderError, renderTemplate } from '../../src/messaging/liquid.ts';

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

test('wrapping is per attribute: a set wrapper attribute gets `content`, an empty one keeps the template value', async () => {
  const club = { name: 'Mall', messaging_settings: {} };
  const ch = compileChannel(
    {
      type: 'push', templateType: 'push', content: { subject: 'Hi {{ first_name }}', body: 'Points: {{ points }}', uri: 'app://x/{{ member_id }}' },
      wrapper: { body: '{{ content }} — {{ shop }}', subject: 'Fixed title', preheader: '', uri: null },
      senderType: null, senderValue: null, fromEmail: null, fromName: null,
    },
    club,
  );
  const out = await renderContent(ch, { first_name: 'Ola', points: 5, member_id: 7, shop: 'Mall' });
  assert.deepEqual(out, { kind: 'push', title: 'Fixed title', body: 'Points: 5 — Mall', image: null, url: 'app://x/7', data: null });
});
