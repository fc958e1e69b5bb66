// Rendering a channel's template for one recipient: the merge properties in their precedence
// (recipient > sending > member > club defaults), the sandboxed Liquid engine of
// src/messaging/liquid.ts (time, memory and output limits), the wrapper, and the transport's
// content type. Templates and wrappers are parsed once per sending and channel, not per recipient.
import type { Template } from 'liquidjs';
import { MAX_OUTPUT_LENGTH, parseTemplate, renderTemplate } from '../messaging/liquid.ts';
import type { LoyaltyClub } from '../platform/context.ts';
import type { Channel, EmailContent, PushContent, SmsContent } from '../transports/transport.ts';

export type Content = SmsContent | EmailContent | PushContent;
export type Vars = Record<string, unknown>;

/** A channel as the engine reads it from message_channels + its template + the wrapper template. */
export interface ChannelDefinition {
  type: Channel;
  templateType: 'plain' | 'email' | 'bee_email' | 'push' | 'generic';
  content: Record<string, any>;
  /** The wrapper template's content (DECISIONS "Wrappers"): one level, per attribute. */
  wrapper: Record<string, any> | null;
  senderType: 'alphanumeric' | 'international' | null;
  senderValue: string | null;
  fromEmail: string | null;
  fromName: string | null;
  /** The subject of an e-mail whose template has none. */
  messageName?: string;
}

/** The attributes a wrapper can wrap; `uri` is the push link (a template may call it `url`). */
const WRAPPED = ['body', 'subject', 'preheader', 'uri'] as const;
type Wrapped = (typeof WRAPPED)[number];

/**
 * One parsed field. `parsed` is null when the source has no Liquid at all. `simple` is set when
 * the source is only text and plain `{{ name }}` / `{{ a.b }}` outputs — the common merge tag —
 * which are filled in directly: the same result as the engine for scalar values, at a fraction of
 * the cost per recipient; any other value goes through the engine.
 */
type Field = { source: string; parsed: Template[] | null; simple: Array<string | string[]> | null };

const SIMPLE_OUTPUT = /\{\{\s*([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)\s*\}\}/g;

function simpleParts(text: string): Array<string | string[]> | null {
  if (text.includes('{%')) return null;
  const parts: Array<string | string[]> = [];
  let last = 0;
  for (const m of text.matchAll(SIMPLE_OUTPUT)) {
    parts.push(text.slice(last, m.index), m[1].split('.'));
    last = m.index! + m[0].length;
  }
  parts.push(text.slice(last));
  // Any `{{` left in the literal parts is Liquid this fast path does not handle (filters, `{{-`).
  return parts.some((p) => typeof p === 'string' && p.includes('{{')) ? null : parts;
}

/** The value at a path, own properties only (as the engine is configured); undefined when absent. */
function lookup(vars: Vars, path: string[]): unknown {
  let v: unknown = vars;
  for (const key of path) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, key)) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

export interface CompiledChannel {
  def: ChannelDefinition;
  fields: Record<string, Field>;
  /** The wrapper's attributes that are set; the others keep the template's value. */
  wrapper: Partial<Record<Wrapped, Field>> | null;
  /** Whether any field names `app_token` (the member's newest push token is then looked up). */
  usesAppToken: boolean;
  sms?: SmsContent['from'];
  email?: EmailContent['from'];
}

export class TemplateError extends Error {}

function compileField(source: unknown): Field {
  const text = typeof source === 'string' ? source : '';
  if (!/\{\{|\{%/.test(text)) return { source: text, parsed: null, simple: null };
  const r = parseTemplate(text);
  if (!r.ok) throw new TemplateError(`template does not parse: ${r.error}`);
  return { source: text, parsed: r.templates, simple: simpleParts(text) };
}

async function renderField(f: Field, vars: Vars): Promise<string> {
  if (!f.parsed) return f.source;
  if (f.simple) {
    let out = '';
    let scalar = true;
    for (const p of f.simple) {
      if (typeof p === 'string') out += p;
      else {
        const v = lookup(vars, p);
        if (v === undefined || v === null) continue;
        if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out += String(v);
        else {
          scalar = false;
          break;
        }
      }
    }
    if (scalar && out.length <= MAX_OUTPUT_LENGTH) return out;
  }
  return renderTemplate(f.parsed, vars);
}

/** Parses a channel once; club settings give the sender when the channel has none (§8.2). */
export function compileChannel(def: ChannelDefinition, club: Pick<LoyaltyClub, 'name' | 'messaging_settings'>): CompiledChannel {
  const fields: Record<string, Field> = {};
  for (const key of ['subject', 'body', 'preheader', 'image_url']) fields[key] = compileField(def.content?.[key]);
  fields.uri = compileField(def.content?.uri ?? def.content?.url);
  let wrapper: CompiledChannel['wrapper'] = null;
  if (def.wrapper) {
    wrapper = {};
    for (const key of WRAPPED) {
      const source = def.wrapper[key];
      if (typeof source === 'string' && source !== '') wrapper[key] = compileField(source);
    }
  }
  const sources = [...Object.values(fields), ...Object.values(wrapper ?? {})].map((f) => f.source);
  const usesAppToken = sources.some((src) => src.includes('app_token'));
  const channels = club.messaging_settings?.channels ?? {};
  const out: CompiledChannel = { def, fields, wrapper, usesAppToken };
  if (def.type === 'sms') {
    const dflt = channels.sms?.default_sender ?? {};
    const type = def.senderType ?? dflt.type ?? 'alphanumeric';
    const value = def.senderValue ?? dflt.value ?? club.name.replace(/[^A-Za-z0-9 ]/g, '').slice(0, 11);
    out.sms = { type, value };
  }
  if (def.type === 'email') {
    out.email = { email: def.fromEmail ?? channels.email?.from_email ?? 'no-reply@localhost', name: def.fromName ?? channels.email?.from_name ?? club.name };
  }
  return out;
}

/** Club defaults: the lowest layer of merge properties. */
export function clubDefaults(club: Pick<LoyaltyClub, 'name' | 'slug' | 'messaging_settings'>): Vars {
  const configured = club.messaging_settings?.default_properties;
  return { loyalty_club_name: club.name, loyalty_club_slug: club.slug, ...(configured && typeof configured === 'object' ? configured : {}) };
}

export interface MemberData {
  id: number;
  properties: Record<string, unknown>;
  email: string | null;
  msisdn: string | null;
  /** The newest push token; undefined when not looked up (no template names it). */
  app_token?: string | null;
}

/** The identifiers of a recipient without `member_id`, as given in the sending. */
export interface RecipientIdentifiers {
  email: string | null;
  msisdn: string | null;
  app_token: string | null;
}

/**
 * The merge properties of one recipient (DECISIONS "Merge tags"). A member recipient gets MPC's
 * `member` object (id, msisdn, email, app_token and every member property) and the reserved,
 * empty `dmp`; a recipient without a member gets its own identifiers at the top level. Top-level
 * layers, later wins: club defaults < the flat member fields Hei offered before (or the
 * recipient's identifiers) < sending properties < recipient properties.
 */
export function mergeVars(defaults: Vars, member: MemberData | null, sending: Vars, recipient: Vars, extra: Vars = {}, identifiers: RecipientIdentifiers | null = null): Vars {
  if (member) {
    const email = member.email ?? member.properties.email ?? null;
    const msisdn = member.msisdn ?? member.properties.msisdn ?? null;
    const memberObject = { ...member.properties, id: member.id, msisdn, email, app_token: member.app_token ?? null };
    return { ...defaults, ...extra, ...member.properties, member_id: member.id, email, msisdn, member: memberObject, dmp: {}, ...sending, ...recipient };
  }
  return { ...defaults, ...extra, ...(identifiers ?? {}), ...sending, ...recipient };
}

// A readable text part for HTML e-mail: block ends become line breaks, tags and entities go.
export function htmlToText(html: string): string {
  return html
    .replace(/<(style|script|head)[^>]*>[\s\S]*?<\/\1>/gi, '')
    .replace(/<br\s*\/?>/gi, '\n')
    .replace(/<\/(p|div|h[1-6]|li|tr|table)>/gi, '\n')
    .replace(/<a\s[^>]*href="([^"]*)"[^>]*>([\s\S]*?)<\/a>/gi, (_m, href, text) => (text.trim() && text.trim() !== href ? `${text} (${href})` : href))
    .replace(/<[^>]+>/g, '')
    .replace(/&nbsp;/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/[ \t]+\n/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

const escapeHtml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** One attribute through the wrapper: its `content` is the template's value; unset keeps it. */
async function wrap(ch: CompiledChannel, key: Wrapped, content: string, vars: Vars): Promise<string> {
  const field = ch.wrapper?.[key];
  return field ? renderField(field, { ...vars, content }) : content;
}

/**
 * Renders one recipient's content. Throws RenderError / TemplateError (the engine records it as
 * a permanent failure of that dispatch).
 */
export async function renderContent(ch: CompiledChannel, vars: Vars, opts: { unsubscribeUrl?: string | null } = {}): Promise<Content> {
  const f = ch.fields;
  switch (ch.def.type) {
    case 'sms': {
      const text = await wrap(ch, 'body', await renderField(f.body, vars), vars);
      return { kind: 'sms', from: ch.sms!, text };
    }
    case 'email': {
      const plain = ch.def.templateType === 'plain';
      const own = plain ? String(vars.subject ?? '') : await wrap(ch, 'subject', await renderField(f.subject, vars), vars);
      // An e-mail without a subject goes out with the message's name (DECISIONS "Templates").
      const subject = own.replace(/\s+/g, ' ').trim() || ch.def.messageName || ch.email!.name || '';
      const body = await renderField(f.body, vars);
      // A plain template on e-mail is text: the HTML part is its escaped copy.
      const html = await wrap(ch, 'body', plain ? `<p>${escapeHtml(body).replace(/\n/g, '<br>')}</p>` : body, vars);
      const preheaderText = f.preheader.source ? await renderField(f.preheader, vars) : '';
      const preheader = ch.wrapper?.preheader ? await wrap(ch, 'preheader', preheaderText, vars) : f.preheader.source ? preheaderText : null;
      return { kind: 'email', from: ch.email!, subject, html, text: plain ? body : htmlToText(html), preheader, unsubscribeUrl: opts.unsubscribeUrl ?? null };
    }
    case 'push': {
      const body = await wrap(ch, 'body', await renderField(f.body, vars), vars);
      const title = await wrap(ch, 'subject', await renderField(f.subject, vars), vars);
      const image = f.image_url.source ? await renderField(f.image_url, vars) : null;
      const link = f.uri.source ? await renderField(f.uri, vars) : '';
      const url = ch.wrapper?.uri ? await wrap(ch, 'uri', link, vars) : f.uri.source ? link : null;
      const data = ch.def.content?.data && typeof ch.def.content.data === 'object' ? Object.fromEntries(Object.entries(ch.def.content.data).map(([k, v]) => [k, String(v)])) : null;
      return { kind: 'push', title, body, image, url, data };
    }
  }
}
