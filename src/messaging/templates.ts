// Templates (§5.3, §7): content fields per type, channel compatibility, wrappers, Liquid checks.
// Standalone templates and channel templates share one table; a channel always owns a private copy.
import type { Queryable } from '../db/connection.ts';
import { ApiError, Violations } from '../platform/errors.ts';
import { hasContentSlot, MAX_NESTING_DEPTH, parseTemplate, renderTemplate, renderWrapped, TOO_DEEPLY_NESTED } from './liquid.ts';
import type { ChannelType, TemplateContent, TemplateType, WrapperKind } from './schemas.ts';
import { iso } from '../platform/schema.ts';

type Path = ReadonlyArray<string | number>;

interface FieldRules {
  required: readonly (keyof TemplateContent)[];
  allowed: readonly (keyof TemplateContent)[];
}

/** Content fields of each template type (§7.1). */
export const TEMPLATE_FIELDS: Record<TemplateType, FieldRules> = {
  plain: { required: ['body'], allowed: ['body'] },
  email: { required: ['subject', 'body'], allowed: ['subject', 'body', 'preheader'] },
  bee_email: { required: ['subject', 'body', 'json'], allowed: ['subject', 'body', 'preheader', 'json'] },
  push: { required: ['body'], allowed: ['subject', 'body', 'image_url', 'url', 'data'] },
};

/** Liquid-bearing fields, checked at save time. */
const LIQUID_FIELDS = ['body', 'subject', 'preheader', 'image_url', 'url'] as const;

export function templateFitsChannel(template: TemplateType, channel: ChannelType): boolean {
  switch (template) {
    case 'plain':
      return true;
    case 'email':
    case 'bee_email':
      return channel === 'email';
    case 'push':
      return channel === 'push';
  }
}

export function wrapperKindFor(template: TemplateType): WrapperKind {
  switch (template) {
    case 'plain':
    case 'push':
      return 'text';
    case 'email':
    case 'bee_email':
      return 'html';
  }
}

/** Adds a violation when `source` is not valid Liquid. */
export function checkLiquid(v: Violations, path: Path, source: string): void {
  const parsed = parseTemplate(source);
  if (!parsed.ok) {
    if (parsed.error === 'too_long') v.add(path, 'too_long');
    else if (parsed.error === TOO_DEEPLY_NESTED) v.add(path, 'too_deeply_nested', { max_depth: MAX_NESTING_DEPTH });
    else v.add(path, 'invalid_syntax', { message: parsed.error });
  }
}

/** Content fields for the template type, each Liquid field parsed. */
export function checkContent(v: Violations, path: Path, type: TemplateType, content: TemplateContent): void {
  const rules = TEMPLATE_FIELDS[type];
  for (const key of Object.keys(content) as (keyof TemplateContent)[]) {
    if (!rules.allowed.includes(key)) v.add([...path, key], 'not_permitted');
  }
  for (const key of rules.required) {
    const value = content[key];
    if (value === undefined || (typeof value === 'string' && value.trim() === '')) v.add([...path, key], 'blank');
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

export interface WrapperRow {
  id: number;
  loyalty_club_id: number;
  name: string;
  kind: WrapperKind;
  body: string;
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

export async function findWrapper(db: Queryable, clubId: number, id: number): Promise<WrapperRow | null> {
  const { rows } = await db.query<WrapperRow>(
    'SELECT id, loyalty_club_id, name, kind, body, created_at, updated_at FROM message_wrappers WHERE id = $1 AND loyalty_club_id = $2',
    [id, clubId],
  );
  return rows[0] ?? null;
}

/**
 * A wrapper chosen for a template: it must be the club's (else 404, as for any foreign id) and of
 * the kind the template type needs (else 422 `invalid` at the field).
 */
export async function checkWrapper(db: Queryable, clubId: number, v: Violations, path: Path, wrapperId: number | null | undefined, type: TemplateType): Promise<void> {
  if (wrapperId === null || wrapperId === undefined) return;
  const wrapper = await findWrapper(db, clubId, wrapperId);
  if (!wrapper) throw new ApiError(404, 'Wrapper not found');
  if (wrapper.kind !== wrapperKindFor(type)) v.add(path, 'invalid', { kind: wrapperKindFor(type) });
}

export function checkWrapperBody(v: Violations, path: Path, body: string): void {
  checkLiquid(v, path, body);
  if (!hasContentSlot(body)) v.add(path, 'missing_content_slot');
}

// ---------- rendering (for the delivery engine) ----------

export interface RenderedContent {
  body: string;
  subject?: string;
  preheader?: string;
  image_url?: string;
  url?: string;
  data?: Record<string, string>;
}

/**
 * A template's content rendered with merge properties; the body is put into the wrapper's
 * `{{ content }}` slot when the template has one. Throws `RenderError` (liquid.ts) on failure.
 */
export async function renderContent(t: Pick<TemplateRow, 'type' | 'content'>, wrapperBody: string | null, properties: Record<string, unknown>): Promise<RenderedContent> {
  const c = t.content;
  const out: RenderedContent = { body: await renderWrapped(wrapperBody, await renderTemplate(c.body ?? '', properties), properties) };
  for (const key of ['subject', 'preheader', 'image_url', 'url'] as const) {
    if (typeof c[key] === 'string') out[key] = await renderTemplate(c[key]!, properties);
  }
  if (c.data) {
    out.data = {};
    for (const [k, v] of Object.entries(c.data)) out.data[k] = await renderTemplate(v, properties);
  }
  return out;
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

export function serializeWrapper(w: WrapperRow) {
  return { id: w.id, name: w.name, kind: w.kind, body: w.body, created_at: iso(w.created_at)!, updated_at: iso(w.updated_at)! };
}
