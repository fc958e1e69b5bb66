// Templates (§5.3, §7): content fields per type, channel compatibility, wrappers, Liquid checks.
// Standalone templates and channel templates share one table; a channel always owns a private copy.
import type { Queryable } from '../db/connection.ts';
import type { Violations } from '../platform/errors.ts';
import { MAX_NESTING_DEPTH, parseTemplate, TOO_DEEPLY_NESTED } from './liquid.ts';
import type { ChannelType, TemplateContent, TemplateType } from './schemas.ts';
import { iso } from '../platform/schema.ts';

type Path = ReadonlyArray<string | number>;

interface FieldRules {
  /** Each entry is satisfied by any one of its names (MPC's name first, then Hei's earlier alias). */
  required: readonly (readonly (keyof TemplateContent)[])[];
  allowed: readonly (keyof TemplateContent)[];
}

/**
 * Content fields of each template type (DECISIONS "Templates"). `uri` is the push link (`url`
 * is accepted too), `bee_json` the Bee design (`json` too); a field is stored and echoed under
 * the name it was given.
 */
export const TEMPLATE_FIELDS: Record<TemplateType, FieldRules> = {
  plain: { required: [['body']], allowed: ['body'] },
  email: { required: [['body']], allowed: ['subject', 'body', 'preheader'] },
  bee_email: { required: [['body'], ['bee_json', 'json']], allowed: ['subject', 'body', 'preheader', 'bee_json', 'json'] },
  push: { required: [['body']], allowed: ['subject', 'body', 'uri', 'url', 'image_url', 'data'] },
  generic: { required: [], allowed: ['body', 'subject', 'preheader', 'uri', 'image_url'] },
};

/** Liquid-bearing fields, checked at save time. */
const LIQUID_FIELDS = ['body', 'subject', 'preheader', 'image_url', 'uri', 'url'] as const;

export function templateFitsChannel(template: TemplateType, channel: ChannelType): boolean {
  switch (template) {
    case 'plain':
    case 'generic':
      return true;
    case 'email':
    case 'bee_email':
      return channel === 'email';
    case 'push':
      return channel === 'push';
  }
}

/** Which wrapper types a template type takes (DECISIONS "Wrappers", MPC's table). */
export const WRAPPER_TYPES: Record<TemplateType, readonly TemplateType[]> = {
  plain: ['generic', 'email', 'bee_email', 'push', 'plain'],
  email: ['generic', 'email', 'bee_email'],
  push: ['generic', 'push'],
  bee_email: ['generic'],
  generic: ['generic', 'email', 'bee_email', 'push'],
};

/** Tags that would read other templates: refused when a template is saved, not at send time. */
const FORBIDDEN_TAG = /\{%-?\s*(include|render|layout)\b/;
const LIQUID_TAG_BLOCK = /\{%-?\s*liquid\b([\s\S]*?)-?%\}/g;

function forbiddenTag(source: string): string | null {
  const direct = FORBIDDEN_TAG.exec(source);
  if (direct) return direct[1];
  // `{% liquid … %}` holds one tag per line, without delimiters.
  for (const block of source.matchAll(LIQUID_TAG_BLOCK)) {
    const line = block[1].split('\n').map((l) => l.trim()).find((l) => /^(include|render|layout)\b/.test(l));
    if (line) return line.split(/\s/)[0];
  }
  return null;
}

/** Adds a violation when `source` is not valid Liquid or uses a tag Hei refuses. */
export function checkLiquid(v: Violations, path: Path, source: string): void {
  const tag = forbiddenTag(source);
  if (tag) {
    v.add(path, 'liquid_tag_not_allowed', { tag });
    return;
  }
  const parsed = parseTemplate(source);
  if (!parsed.ok) {
    if (parsed.error === 'too_long') v.add(path, 'too_long');
    else if (parsed.error === TOO_DEEPLY_NESTED) v.add(path, 'too_deeply_nested', { max_depth: MAX_NESTING_DEPTH });
    else v.add(path, 'liquid_syntax_error', { syntax_error: parsed.error });
  }
}

/** Content fields for the template type, each Liquid field parsed. */
export function checkContent(v: Violations, path: Path, type: TemplateType, content: TemplateContent): void {
  const rules = TEMPLATE_FIELDS[type];
  for (const key of Object.keys(content) as (keyof TemplateContent)[]) {
    if (!rules.allowed.includes(key)) v.add([...path, key], 'not_permitted');
  }
  for (const names of rules.required) {
    const present = names.filter((key) => {
      const value = content[key];
      return value !== undefined && !(typeof value === 'string' && value.trim() === '');
    });
    if (present.length === 0) v.add([...path, names[0]], 'blank');
  }
  for (const [name, alias] of [['uri', 'url'], ['bee_json', 'json']] as const) {
    if (content[name] !== undefined && content[alias] !== undefined) v.add([...path, alias], 'attribute_cannot_be_present_with', { with: name });
  }
  for (const key of LIQUID_FIELDS) {
    const value = content[key];
    if (typeof value === 'string' && rules.allowed.includes(key)) checkLiquid(v, [...path, key], value);
  }
  if (content.data && rules.allowed.includes('data')) {
    for (const [k, value] of Object.entries(content.data)) checkLiquid(v, [...path, 'data', k], value);
  }
}

/** Only the fields of the type are kept (so a stored template never carries stray content). */
export function cleanContent(type: TemplateType, content: TemplateContent): TemplateContent {
  const out: Record<string, unknown> = {};
  for (const key of TEMPLATE_FIELDS[type].allowed) if (content[key] !== undefined) out[key] = content[key];
  return out as TemplateContent;
}

// ---------- store ----------

export interface TemplateRow {
  id: number;
  loyalty_club_id: number;
  standalone: boolean;
  name: string | null;
  type: TemplateType;
  content: TemplateContent;
  wrapper_id: number | null;
  created_at: Date;
  updated_at: Date;
}

const TEMPLATE_COLUMNS = 'id, loyalty_club_id, standalone, name, type, content, wrapper_id, created_at, updated_at';

export async function findStandaloneTemplate(db: Queryable, clubId: number, id: number): Promise<TemplateRow | null> {
  const { rows } = await db.query<TemplateRow>(
    `SELECT ${TEMPLATE_COLUMNS} FROM message_templates WHERE id = $1 AND loyalty_club_id = $2 AND standalone`,
    [id, clubId],
  );
  return rows[0] ?? null;
}

export async function findTemplatesByIds(db: Queryable, ids: number[]): Promise<Map<number, TemplateRow>> {
  if (ids.length === 0) return new Map();
  const { rows } = await db.query<TemplateRow>(`SELECT ${TEMPLATE_COLUMNS} FROM message_templates WHERE id = ANY($1::bigint[])`, [ids]);
  return new Map(rows.map((r) => [r.id, r]));
}

export async function insertTemplate(
  db: Queryable,
  t: { clubId: number; standalone: boolean; name: string | null; type: TemplateType; content: TemplateContent; wrapperId: number | null },
): Promise<TemplateRow> {
  const { rows } = await db.query<TemplateRow>(
    `INSERT INTO message_templates (loyalty_club_id, standalone, name, type, content, wrapper_id)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${TEMPLATE_COLUMNS}`,
    [t.clubId, t.standalone, t.name, t.type, JSON.stringify(t.content), t.wrapperId],
  );
  return rows[0];
}

/**
 * A wrapper chosen for a template is one of the club's stored templates (else 422
 * `template_does_not_exist`) of a type the template's type takes (else `wrapper_type_does_not_match`).
 */
export async function checkWrapper(db: Queryable, clubId: number, v: Violations, path: Path, wrapperId: number | null | undefined, type: TemplateType, selfId?: number): Promise<void> {
  if (wrapperId === null || wrapperId === undefined) return;
  const wrapper = wrapperId === selfId ? null : await findStandaloneTemplate(db, clubId, wrapperId);
  if (!wrapper) v.add(path, 'template_does_not_exist');
  else if (!WRAPPER_TYPES[type].includes(wrapper.type)) v.add(path, 'wrapper_type_does_not_match', { in: [...WRAPPER_TYPES[type]] });
}

/** Whether another template wraps itself in this one (such a template cannot be deleted). */
export async function isUsedAsWrapper(db: Queryable, id: number): Promise<boolean> {
  const { rows } = await db.query('SELECT 1 FROM message_templates WHERE wrapper_id = $1 LIMIT 1', [id]);
  return rows.length > 0;
}

// ---------- serialisation ----------

export function serializeTemplate(t: TemplateRow) {
  return {
    id: t.id,
    wrapper_id: t.wrapper_id,
    type: t.type,
    content: t.content,
    created_at: iso(t.created_at)!,
    updated_at: iso(t.updated_at)!,
  };
}

export function serializeStandaloneTemplate(t: TemplateRow) {
  return {
    id: t.id,
    name: t.name ?? '',
    wrapper_id: t.wrapper_id,
    type: t.type,
    content: t.content,
    created_at: iso(t.created_at)!,
    updated_at: iso(t.updated_at)!,
  };
}
