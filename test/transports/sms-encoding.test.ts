import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseEncoding, countSegments, decodeGsm7, decodeUcs2, encodeGsm7, encodeUcs2, planSms, smsPdus } from '../../src/transports/sms-encoding.ts';

test('GSM-7 is chosen when every character is in the basic or extension table', () => {
  assert.equal(chooseEncoding('Hei! Rabatt på 50% @ Storsenteret £$¥ ÆØÅ æøå'), 'gsm7');
  assert.equal(chooseEncoding('Braces {} [] ~ \\ | ^ € are extension characters'), 'gsm7');
  assert.equal(chooseEncoding('Smile 😀'), 'ucs2');
  assert.equal(chooseEncoding('Привет'), 'ucs2');
  assert.equal(chooseEncoding('ç is not in the basic table'), 'ucs2');
});

test('GSM-7 encodes extension characters as ESC + code and decodes back', () => {
  const text = 'A€[]{}~|^\\ @£ ÆØÅ';
  const bytes = encodeGsm7(text);
  assert.deepEqual([...bytes.subarray(0, 3)], [0x41, 0x1b, 0x65]);
  assert.equal(decodeGsm7(bytes), text);
  assert.equal(bytes[bytes.indexOf(0x00)], 0x00); // '@' is septet 0
});

test('UCS-2 is big-endian UTF-16 and keeps surrogate pairs', () => {
  const bytes = encodeUcs2('Hi😀');
  assert.deepEqual([...bytes.subarray(0, 4)], [0x00, 0x48, 0x00, 0x69]);
  assert.equal(bytes.length, 8);
  assert.equal(decodeUcs2(bytes), 'Hi😀');
});

test('GSM-7 segments: 160 alone, 153 per part, extension characters count twice', () => {
  assert.equal(countSegments('a'.repeat(160)), 1);
  assert.equal(countSegments('a'.repeat(161)), 2);
  assert.equal(countSegments('a'.repeat(158) + '€'), 1); // 160 septets
  assert.equal(countSegments('a'.repeat(159) + '€'), 2); // 161 septets
  assert.equal(countSegments('a'.repeat(306)), 2);
  assert.equal(countSegments('a'.repeat(307)), 3);
  assert.equal(countSegments('a'.repeat(153 * 7)), 7);
  assert.equal(countSegments('a'.repeat(153 * 6 + 1)), 7);
  // An escape sequence is never cut between two parts.
  const plan = planSms('a'.repeat(152) + '€' + 'b'.repeat(20));
  assert.deepEqual(plan.parts.map((p) => p.length), [152, 21]);
  assert.ok(plan.parts[1].startsWith('€'));
});

test('UCS-2 segments: 70 alone, 67 per part, an emoji is two units and never split', () => {
  assert.equal(countSegments('ж'.repeat(70)), 1);
  assert.equal(countSegments('ж'.repeat(71)), 2);
  assert.equal(countSegments('😀'.repeat(35)), 1);
  const plan = planSms('😀'.repeat(36));
  assert.equal(plan.encoding, 'ucs2');
  assert.deepEqual(plan.parts.map((p) => p.length), [66, 6]); // 33 emoji, then 3
  assert.equal(plan.parts.join(''), '😀'.repeat(36));
});

test('concatenated parts carry a UDH 05 00 03 ref total seq and esm_class 0x40', () => {
  const { pdus } = smsPdus('x'.repeat(400), 0x2a);
  assert.equal(pdus.length, 3);
  pdus.forEach((p, i) => {
    assert.deepEqual([...p.shortMessage.subarray(0, 6)], [0x05, 0x00, 0x03, 0x2a, 3, i + 1]);
    assert.equal(p.esmClass, 0x40);
    assert.equal(p.dataCoding, 0);
  });
  assert.equal(pdus[0].shortMessage.length, 6 + 153);
  const single = smsPdus('Hei 😀', 1).pdus;
  assert.equal(single.length, 1);
  assert.equal(single[0].dataCoding, 8);
  assert.equal(single[0].esmClass, 0);
});
