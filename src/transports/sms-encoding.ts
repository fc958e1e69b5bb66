// GSM 03.38 vs UCS-2 for SMS text, segment counting and splitting into concatenated parts.
// SMPP carries GSM-7 unpacked (one septet per octet, data_coding 0); the SMSC packs it, so the
// limits are the over-the-air ones: 160 septets alone, 153 per part with a 6-octet UDH.

// GSM 03.38 default alphabet, index = septet value. ESC (0x1B) is the extension-table prefix.
const BASIC =
  '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?' +
  '¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà';
// Extension table: character → septet after ESC. Each costs two septets.
const EXTENSION: Record<string, number> = { '\f': 0x0a, '^': 0x14, '{': 0x28, '}': 0x29, '\\': 0x2f, '[': 0x3c, '~': 0x3d, ']': 0x3e, '|': 0x40, '€': 0x65 };

const basicIndex = new Map<string, number>();
for (let i = 0; i < BASIC.length; i++) if (i !== 0x1b) basicIndex.set(BASIC[i], i);
const extensionByCode = new Map<number, string>(Object.entries(EXTENSION).map(([c, v]) => [v, c]));

export type SmsEncoding = 'gsm7' | 'ucs2';
/** SMPP data_coding: 0 = SMSC default alphabet (GSM 03.38), 8 = UCS-2. */
export const DATA_CODING: Record<SmsEncoding, number> = { gsm7: 0x00, ucs2: 0x08 };

export const LIMITS = {
  gsm7: { single: 160, part: 153 },
  ucs2: { single: 70, part: 67 },
} as const;

/** Septets a character takes in GSM-7 (1 or 2), or 0 when it is not representable. */
function gsmCost(ch: string): number {
  if (basicIndex.has(ch)) return 1;
  if (ch in EXTENSION) return 2;
  return 0;
}

export function chooseEncoding(text: string): SmsEncoding {
  for (const ch of text) if (gsmCost(ch) === 0) return 'ucs2';
  return 'gsm7';
}

/**
 * Splits text into the units that must stay together: a GSM character with its escape, or a
 * UTF-16 surrogate pair (an emoji is two UCS-2 units but cannot be cut in half).
 */
function units(text: string, enc: SmsEncoding): { ch: string; size: number }[] {
  return Array.from(text, (ch) => ({ ch, size: enc === 'gsm7' ? gsmCost(ch) : ch.length }));
}

export interface SmsPlan {
  encoding: SmsEncoding;
  /** The text of each part, in order; one element when it fits a single message. */
  parts: string[];
  /** Septets (GSM-7) or UTF-16 units (UCS-2) of the whole text. */
  length: number;
}

export function planSms(text: string): SmsPlan {
  const encoding = chooseEncoding(text);
  const limit = LIMITS[encoding];
  // Fast path (most texts): the length alone decides, no per-character units needed.
  let length = 0;
  if (encoding === 'ucs2') length = text.length;
  else for (const ch of text) length += gsmCost(ch);
  if (length <= limit.single) return { encoding, parts: [text], length };
  const parts: string[] = [];
  let current = '';
  let used = 0;
  for (const u of units(text, encoding)) {
    if (used + u.size > limit.part) {
      parts.push(current);
      current = '';
      used = 0;
    }
    current += u.ch;
    used += u.size;
  }
  if (current) parts.push(current);
  return { encoding, parts, length };
}

export const countSegments = (text: string): number => planSms(text).parts.length;

export function encodeGsm7(text: string): Buffer {
  const out: number[] = [];
  for (const ch of text) {
    const b = basicIndex.get(ch);
    if (b !== undefined) out.push(b);
    else if (ch in EXTENSION) out.push(0x1b, EXTENSION[ch]);
    else out.push(0x3f); // '?': never reached when the encoding was chosen by chooseEncoding
  }
  return Buffer.from(out);
}

export function decodeGsm7(buf: Buffer): string {
  let s = '';
  for (let i = 0; i < buf.length; i++) {
    if (buf[i] === 0x1b && i + 1 < buf.length) s += extensionByCode.get(buf[++i]) ?? ' ';
    else s += BASIC[buf[i] & 0x7f];
  }
  return s;
}

export function encodeUcs2(text: string): Buffer {
  const le = Buffer.from(text, 'utf16le');
  return le.swap16(); // UCS-2 on the wire is big-endian
}

export function decodeUcs2(buf: Buffer): string {
  return Buffer.from(buf).swap16().toString('utf16le');
}

export const encodeText = (text: string, enc: SmsEncoding): Buffer => (enc === 'gsm7' ? encodeGsm7(text) : encodeUcs2(text));

/** 8-bit-reference concatenation UDH (IEI 0x00): 05 00 03 ref total seq. */
export function concatUdh(ref: number, total: number, seq: number): Buffer {
  return Buffer.from([0x05, 0x00, 0x03, ref & 0xff, total, seq]);
}

export interface SmsPdu {
  /** short_message octets: UDH (when concatenated) followed by the encoded text. */
  shortMessage: Buffer;
  dataCoding: number;
  /** esm_class 0x40 marks a UDH in short_message. */
  esmClass: number;
}

/** The short_message bodies for a text: one per part, UDH-prefixed when there are several. */
export function smsPdus(text: string, ref: number): { plan: SmsPlan; pdus: SmsPdu[] } {
  const plan = planSms(text);
  const total = plan.parts.length;
  const pdus = plan.parts.map((part, i) => {
    const body = encodeText(part, plan.encoding);
    return total === 1
      ? { shortMessage: body, dataCoding: DATA_CODING[plan.encoding], esmClass: 0 }
      : { shortMessage: Buffer.concat([concatUdh(ref, total, i + 1), body]), dataCoding: DATA_CODING[plan.encoding], esmClass: 0x40 };
  });
  return { plan, pdus };
}
