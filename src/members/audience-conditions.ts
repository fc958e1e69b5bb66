// The audience conditions language (docs/decisions.md "Audiences"): validation against the club's
// member schema, and compilation to a parameterised SQL predicate over `members m`.
// Values always travel as $n parameters; field names only ever reach SQL as parameters too
// (`m.properties -> $4`) or through fixed allow-listed column names.
import { ValidationFailed, Violations } from '../platform/errors.ts';

export const CONDITION_GROUPS = ['member_properties', 'consents', 'channels', 'groups', 'member', 'any_of'] as const;
export const OPERATORS = [
  'match', 'not_match', 'any', 'none', 'gt', 'gte', 'lt', 'lte', 'between', 'exists', 'not_exists', 'contains',
] as const;
export const VALUE_TYPE_HINTS = ['string', 'number', 'integer', 'boolean', 'array', 'date', 'date-time'] as const;
/** `unsubscribed` is MPC's too (2021 v1 webhook example); like disabled, never reachable. */
export const CHANNEL_STATUSES = ['enabled', 'verified', 'disabled', 'hard_bounced', 'unsubscribed'] as const;

export type ConditionGroup = (typeof CONDITION_GROUPS)[number];
export type Operator = (typeof OPERATORS)[number];

/** One leaf condition, e.g. `{"condition_group":"member_properties","field":"city","operator":"match","value":"Oslo"}`. */
export interface FieldCondition {
  condition_group: Exclude<ConditionGroup, 'any_of'>;
  field: string;
  operator: Operator;
  value?: unknown;
  /** Optional value-type hint accepted for MPC compatibility (`"array"`); the schema decides. */
  type?: string;
}
/** OR over its `conditions` (each of which may itself be a group). */
export interface AnyOfCondition {
  condition_group: 'any_of';
  conditions: AudienceCondition[];
}
export type AudienceCondition = FieldCondition | AnyOfCondition;

/** The parts of `loyalty_clubs.member_schema` (members-api §3) that conditions depend on. */
export interface MemberSchemaLike {
  properties?: Record<string, unknown>;
  consents?: Record<string, unknown>;
  [key: string]: unknown;
}

/** Limits that keep one audience cheap to validate, compile and plan. */
export const LIMITS = { maxDepth: 4, maxConditions: 200, maxListValues: 1000, maxStringLength: 1000 } as const;

// ---------------------------------------------------------------------------------------------
// Field kinds: what a field holds decides which operators and values make sense.

type ScalarKind = 'string' | 'email' | 'msisdn' | 'date' | 'datetime' | 'number' | 'integer' | 'boolean';
type Kind =
  | { kind: ScalarKind; enum?: unknown[] }
  | { kind: 'array'; items: ScalarKind; enum?: unknown[] }
  | { kind: 'object' }
  | { kind: 'status' }
  | { kind: 'consent' };

const OPS_BY_KIND: Record<string, readonly Operator[]> = {
  string: ['match', 'not_match', 'any', 'none', 'contains', 'exists', 'not_exists'],
  email: ['match', 'not_match', 'any', 'none', 'contains', 'exists', 'not_exists'],
  msisdn: ['match', 'not_match', 'any', 'none', 'contains', 'exists', 'not_exists'],
  date: ['match', 'not_match', 'any', 'none', 'gt', 'gte', 'lt', 'lte', 'between', 'exists', 'not_exists'],
  datetime: ['gt', 'gte', 'lt', 'lte', 'between', 'exists', 'not_exists'],
  number: ['match', 'not_match', 'any', 'none', 'gt', 'gte', 'lt', 'lte', 'between', 'exists', 'not_exists'],
  integer: ['match', 'not_match', 'any', 'none', 'gt', 'gte', 'lt', 'lte', 'between', 'exists', 'not_exists'],
  boolean: ['match', 'not_match', 'exists', 'not_exists'],
  array: ['match', 'contains', 'any', 'none', 'exists', 'not_exists'],
  object: ['exists', 'not_exists'],
  status: ['match', 'not_match', 'any', 'none'],
  consent: ['match', 'not_match', 'exists', 'not_exists'],
};

// Fixed fields outside the member schema. Column names here are the only identifiers that reach SQL.
const MEMBER_FIELDS: Record<string, { kind: Kind; ops: readonly Operator[]; column: string }> = {
  id: { kind: { kind: 'integer' }, ops: ['match', 'not_match', 'any', 'none', 'gt', 'gte', 'lt', 'lte', 'between'], column: 'id' },
  created_at: { kind: { kind: 'datetime' }, ops: ['gt', 'gte', 'lt', 'lte', 'between'], column: 'created_at' },
  subunit_ids: { kind: { kind: 'array', items: 'integer' }, ops: OPS_BY_KIND.array, column: 'subunit_ids' },
  favorite_stores: { kind: { kind: 'array', items: 'integer' }, ops: OPS_BY_KIND.array, column: 'favorite_stores' },
};
const CHANNEL_FIELDS: Record<string, { kind: Kind; ops: readonly Operator[]; column: string }> = {
  sms_status: { kind: { kind: 'status' }, ops: OPS_BY_KIND.status, column: 'sms_status' },
  email_status: { kind: { kind: 'status' }, ops: OPS_BY_KIND.status, column: 'email_status' },
  push_status: { kind: { kind: 'status' }, ops: OPS_BY_KIND.status, column: 'push_status' },
  has_push_token: { kind: { kind: 'boolean' }, ops: ['match', 'not_match'], column: 'has_push_token' },
};
/** The MPC name of group membership (messaging-api §6.6 example). */
const GROUP_FIELD = 'members_group_ids';
const GROUP_KIND: Kind = { kind: 'array', items: 'integer' };
/** Contact identifiers live in `properties` and exist for every club, whatever its schema says. */
const BUILTIN_PROPERTIES: Record<string, Kind> = { msisdn: { kind: 'msisdn' }, email: { kind: 'email' } };

/** Own keys only: a field named `constructor` or `__proto__` is unknown, not Object.prototype's. */
function own<T>(map: Record<string, T>, key: string): T | undefined {
  return Object.prototype.hasOwnProperty.call(map, key) ? map[key] : undefined;
}

function scalarKindOf(def: Record<string, any>, name?: string): ScalarKind | 'array' | 'object' {
  let type = def.type;
  if (Array.isArray(type)) type = type.find((t) => t !== 'null') ?? 'string';
  if (name === 'msisdn' || def.format === 'msisdn') return 'msisdn';
  if (name === 'email' || def.format === 'email') return 'email';
  switch (type) {
    case 'number': return 'number';
    case 'integer': return 'integer';
    case 'boolean': return 'boolean';
    case 'array': return 'array';
    case 'object': return 'object';
    default:
      if (def.format === 'date') return 'date';
      if (def.format === 'date-time') return 'datetime';
      return 'string';
  }
}

function propertyKind(schema: MemberSchemaLike | null | undefined, field: string): Kind | null {
  const props = schema?.properties;
  const raw = props && Object.prototype.hasOwnProperty.call(props, field) ? props[field] : undefined;
  if (raw === undefined || raw === null || typeof raw !== 'object') return own(BUILTIN_PROPERTIES, field) ?? null;
  const def = raw as Record<string, any>;
  const k = scalarKindOf(def, field);
  if (k === 'array') {
    const items = def.items && typeof def.items === 'object' ? (def.items as Record<string, any>) : {};
    const itemKind = scalarKindOf(items);
    return {
      kind: 'array',
      items: itemKind === 'array' || itemKind === 'object' ? 'string' : itemKind,
      enum: Array.isArray(items.enum) ? items.enum : undefined,
    };
  }
  if (k === 'object') return { kind: 'object' };
  return { kind: k, enum: Array.isArray(def.enum) ? def.enum : undefined };
}

function propertyNames(schema: MemberSchemaLike | null | undefined): string[] {
  const names = new Set(Object.keys(BUILTIN_PROPERTIES));
  for (const k of Object.keys(schema?.properties ?? {})) names.add(k);
  return [...names].sort();
}

function consentNames(schema: MemberSchemaLike | null | undefined): string[] {
  const c = schema?.consents;
  return c && typeof c === 'object' ? Object.keys(c).sort() : [];
}

interface ResolvedField {
  group: Exclude<ConditionGroup, 'any_of'>;
  kind: Kind;
  ops: readonly Operator[];
  column?: string;
}

/** Which field a condition names, or the 422 entry for a field that does not exist. */
function resolveField(group: string, field: string, schema: MemberSchemaLike | null | undefined): ResolvedField | { options: string[] } {
  switch (group) {
    case 'member_properties': {
      const kind = propertyKind(schema, field);
      if (kind) return { group, kind, ops: OPS_BY_KIND[kind.kind] };
      // messaging-api §6.6 shows group membership as a member property; accept it there too.
      if (field === GROUP_FIELD) return { group: 'groups', kind: GROUP_KIND, ops: OPS_BY_KIND.array };
      return { options: propertyNames(schema) };
    }
    case 'consents': {
      const names = consentNames(schema);
      return names.includes(field) ? { group, kind: { kind: 'consent' }, ops: OPS_BY_KIND.consent } : { options: names };
    }
    case 'channels': {
      const f = own(CHANNEL_FIELDS, field);
      return f ? { group, kind: f.kind, ops: f.ops, column: f.column } : { options: Object.keys(CHANNEL_FIELDS) };
    }
    case 'groups':
      return field === GROUP_FIELD ? { group, kind: GROUP_KIND, ops: OPS_BY_KIND.array } : { options: [GROUP_FIELD] };
    case 'member': {
      const f = own(MEMBER_FIELDS, field);
      return f ? { group, kind: f.kind, ops: f.ops, column: f.column } : { options: Object.keys(MEMBER_FIELDS) };
    }
  }
  return { options: [] };
}

// ---------------------------------------------------------------------------------------------
// Values

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATETIME_RE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;
const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const MSISDN_RE = /^[1-9]\d{6,14}$/;

/** MSISDNs are stored digits only (members-api §1.7); accept `+47 …` / `0047…` in conditions. */
export function normaliseMsisdn(v: string): string {
  const s = v.replace(/[\s().-]/g, '');
  if (s.startsWith('+')) return s.slice(1);
  if (s.startsWith('00')) return s.slice(2);
  return s;
}

function validDate(s: string): boolean {
  const m = DATE_RE.exec(s);
  if (!m) return false;
  const d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3]));
  return d.getUTCFullYear() === +m[1] && d.getUTCMonth() === +m[2] - 1 && d.getUTCDate() === +m[3];
}

function validDateTime(s: string): boolean {
  if (!DATETIME_RE.test(s)) return false;
  if (DATE_RE.test(s)) return validDate(s);
  return validDate(s.slice(0, 10)) && !Number.isNaN(toDate(s).getTime());
}

/** A date-time condition value as an instant: a date means 00:00 UTC, a time without zone is UTC. */
function toDate(s: string): Date {
  if (DATE_RE.test(s)) return new Date(`${s}T00:00:00Z`);
  const t = s.replace(' ', 'T');
  return new Date(/(Z|[+-]\d{2}:?\d{2})$/.test(t) ? t : `${t}Z`);
}
const instant = (s: string) => toDate(s).toISOString();

/** Checks one scalar against a kind; adds the 422 entry at `path` and answers false when wrong. */
function checkScalar(v: Violations, path: Array<string | number>, kind: ScalarKind | 'status', value: unknown, opts: { enum?: unknown[]; loose?: boolean }): boolean {
  const wrongType = (format: string) => (v.add(path, 'invalid', { format }), false);
  switch (kind) {
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) return wrongType('number');
      break;
    case 'integer':
      // Safe integers only: they travel as bigint / numeric parameters.
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) return wrongType('integer');
      break;
    case 'boolean':
      if (typeof value !== 'boolean') return wrongType('boolean');
      break;
    default: {
      if (typeof value !== 'string') return wrongType('string');
      if (value.length === 0) return (v.add(path, 'blank'), false);
      // PostgreSQL text and jsonb cannot hold NUL.
      if (value.includes('\u0000')) return (v.add(path, 'invalid', { format: 'string' }), false);
      if (value.length > LIMITS.maxStringLength) return (v.add(path, 'too_long', { max_length: LIMITS.maxStringLength }), false);
      if (opts.loose) return true; // `contains` takes any fragment of the text
      if (kind === 'status' && !(CHANNEL_STATUSES as readonly string[]).includes(value)) {
        return (v.add(path, 'inclusion', { in: [...CHANNEL_STATUSES] }), false);
      }
      if (kind === 'email' && !EMAIL_RE.test(value)) return (v.add(path, 'invalid_format', { format: 'email' }), false);
      if (kind === 'msisdn' && !MSISDN_RE.test(normaliseMsisdn(value))) return (v.add(path, 'invalid_msisdn'), false);
      if (kind === 'date' && !validDate(value)) return (v.add(path, 'invalid_format', { format: 'date' }), false);
      if (kind === 'datetime' && !validDateTime(value)) return (v.add(path, 'invalid_format', { format: 'date-time' }), false);
    }
  }
  if (opts.enum && !opts.loose && !opts.enum.some((e) => e === value)) return (v.add(path, 'inclusion', { in: opts.enum }), false);
  return true;
}

function checkList(v: Violations, path: Array<string | number>, value: unknown, each: (item: unknown, i: number) => boolean, exact?: number): boolean {
  if (!Array.isArray(value)) return (v.add(path, 'invalid', { format: 'array' }), false);
  const min = exact ?? 1;
  const max = exact ?? LIMITS.maxListValues;
  if (value.length < min) return (v.add(path, 'too_short', { min_length: min }), false);
  if (value.length > max) return (v.add(path, 'too_long', { max_length: max }), false);
  let ok = true;
  value.forEach((item, i) => {
    if (!each(item, i)) ok = false;
  });
  return ok;
}

function compareScalars(kind: string, a: unknown, b: unknown): number {
  if (kind === 'datetime') return Date.parse(instant(a as string)) - Date.parse(instant(b as string));
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0;
}

function checkValue(v: Violations, path: Array<string | number>, f: ResolvedField, op: Operator, c: Record<string, unknown>): void {
  const vp = [...path, 'value'];
  const has = Object.prototype.hasOwnProperty.call(c, 'value') && c.value !== null;
  if (op === 'exists' || op === 'not_exists') {
    if (has) v.add(vp, 'not_permitted');
    return;
  }
  if (!has) {
    v.add(vp, 'blank');
    return;
  }
  const value = c.value;
  const k = f.kind;
  if (k.kind === 'consent') {
    checkScalar(v, vp, 'boolean', value, {});
    return;
  }
  if (k.kind === 'object') return; // only exists / not_exists reach here, handled above
  if (k.kind === 'array') {
    const item = (x: unknown, p: Array<string | number>) => checkScalar(v, p, k.items, x, { enum: k.enum });
    if (op === 'contains') item(value, vp);
    else checkList(v, vp, value, (x, i) => item(x, [...vp, i]));
    return;
  }
  const scalar = k.kind;
  const enumValues = 'enum' in k ? k.enum : undefined;
  const one = (x: unknown, p: Array<string | number>) => checkScalar(v, p, scalar, x, { enum: enumValues, loose: op === 'contains' });
  switch (op) {
    case 'any':
    case 'none':
      checkList(v, vp, value, (x, i) => one(x, [...vp, i]));
      break;
    case 'between':
      if (checkList(v, vp, value, (x, i) => one(x, [...vp, i]), 2)) {
        const [lo, hi] = value as unknown[];
        if (compareScalars(scalar, lo, hi) > 0) v.add(vp, 'invalid', { format: '[low, high]' });
      }
      break;
    default:
      one(value, vp);
  }
}

// ---------------------------------------------------------------------------------------------
// Validation

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/**
 * Validates an audience's `conditions` against the club's member schema. Paths in the result are
 * relative to the conditions array (`["0","field"]`); merge them under the payload's own prefix,
 * e.g. `v.merge(['sending','audience','conditions'], validateConditions(c, schema))`.
 * A non-array `conditions` is reported under `base`.
 */
export function validateConditions(conditions: unknown, memberSchema: MemberSchemaLike | null | undefined): Violations {
  const v = new Violations();
  if (!Array.isArray(conditions)) {
    v.add([], 'invalid', { format: 'array' });
    return v;
  }
  let count = 0;
  const walk = (list: unknown[], path: Array<string | number>, depth: number) => {
    list.forEach((raw, i) => {
      const p = [...path, i];
      count++;
      if (count === LIMITS.maxConditions + 1) v.add([], 'too_long', { max_length: LIMITS.maxConditions });
      if (!isPlainObject(raw)) {
        v.add(p, 'invalid', { format: 'object' });
        return;
      }
      const group = raw.condition_group;
      if (group === undefined || group === null || group === '') {
        v.add([...p, 'condition_group'], 'blank');
        return;
      }
      if (typeof group !== 'string' || !(CONDITION_GROUPS as readonly string[]).includes(group)) {
        v.add([...p, 'condition_group'], 'inclusion', { in: [...CONDITION_GROUPS] });
        return;
      }
      if (group === 'any_of') {
        for (const key of Object.keys(raw)) if (key !== 'condition_group' && key !== 'conditions') v.add([...p, key], 'not_permitted');
        const inner = raw.conditions;
        if (inner === undefined || inner === null) v.add([...p, 'conditions'], 'blank');
        else if (!Array.isArray(inner)) v.add([...p, 'conditions'], 'invalid', { format: 'array' });
        else if (inner.length === 0) v.add([...p, 'conditions'], 'too_short', { min_length: 1 });
        else if (depth > LIMITS.maxDepth) v.add([...p, 'conditions'], 'too_deep', { max_depth: LIMITS.maxDepth });
        else walk(inner, [...p, 'conditions'], depth + 1);
        return;
      }
      for (const key of Object.keys(raw)) {
        if (!['condition_group', 'field', 'operator', 'value', 'type'].includes(key)) v.add([...p, key], 'not_permitted');
      }
      if (raw.type !== undefined && raw.type !== null && !(VALUE_TYPE_HINTS as readonly unknown[]).includes(raw.type)) {
        v.add([...p, 'type'], 'inclusion', { in: [...VALUE_TYPE_HINTS] });
      }
      const field = raw.field;
      const op = raw.operator;
      let resolved: ResolvedField | null = null;
      if (field === undefined || field === null || field === '') v.add([...p, 'field'], 'blank');
      else if (typeof field !== 'string') v.add([...p, 'field'], 'invalid', { format: 'string' });
      else {
        const r = resolveField(group, field, memberSchema);
        if ('options' in r) v.add([...p, 'field'], 'inclusion', { in: r.options });
        else resolved = r;
      }
      if (op === undefined || op === null || op === '') {
        v.add([...p, 'operator'], 'blank');
        return;
      }
      if (typeof op !== 'string' || !(OPERATORS as readonly string[]).includes(op)) {
        v.add([...p, 'operator'], 'inclusion', { in: resolved ? [...resolved.ops] : [...OPERATORS] });
        return;
      }
      if (!resolved) return;
      if (!resolved.ops.includes(op as Operator)) {
        v.add([...p, 'operator'], 'inclusion', { in: [...resolved.ops] });
        return;
      }
      checkValue(v, p, resolved, op as Operator, raw);
    });
  };
  walk(conditions, [], 1);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Compilation

export interface CompiledConditions {
  /** A boolean SQL expression over the alias (default `m`, a row of `members`). `TRUE` for no conditions. */
  sql: string;
  /** Values for `$firstParam`, `$firstParam+1`, … in order. */
  params: unknown[];
  /** The next free parameter number after this fragment. */
  nextParam: number;
}

export interface CompileOptions {
  /** Number of the first placeholder this fragment may use (default 1). */
  firstParam?: number;
  /** Alias of the members row in the caller's query (default `m`). */
  alias?: string;
}

class Params {
  readonly values: unknown[] = [];
  constructor(private readonly first: number) {}
  add(value: unknown, cast?: string): string {
    this.values.push(value);
    const ref = `$${this.first + this.values.length - 1}`;
    return cast ? `${ref}::${cast}` : ref;
  }
}

const CMP: Partial<Record<Operator, string>> = { gt: '>', gte: '>=', lt: '<', lte: '<=' };

/**
 * Compiles conditions into a parameterised predicate. It validates them first and throws
 * `ValidationFailed` (the tree `validateConditions` gives) on any violation, so an unchecked payload
 * can never reach SQL. Embed as `… FROM members m WHERE m.loyalty_club_id = $1 AND (<sql>)`.
 */
export function compileAudience(conditions: unknown, memberSchema: MemberSchemaLike | null | undefined, opts: CompileOptions = {}): CompiledConditions {
  const violations = validateConditions(conditions, memberSchema);
  if (!violations.empty) throw new ValidationFailed(violations.tree);
  const alias = opts.alias ?? 'm';
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(alias)) throw new Error(`invalid SQL alias ${alias}`);
  const first = opts.firstParam ?? 1;
  if (!Number.isInteger(first) || first < 1) throw new Error(`invalid firstParam ${first}`);
  const params = new Params(first);
  const list = conditions as AudienceCondition[];
  const sql = list.length ? list.map((c) => compileOne(c, memberSchema, alias, params)).join(' AND ') : 'TRUE';
  return { sql, params: params.values, nextParam: first + params.values.length };
}

function compileOne(c: AudienceCondition, schema: MemberSchemaLike | null | undefined, m: string, p: Params): string {
  if (c.condition_group === 'any_of') return `(${c.conditions.map((x) => compileOne(x, schema, m, p)).join(' OR ')})`;
  const f = resolveField(c.condition_group, c.field, schema) as ResolvedField;
  switch (f.group) {
    case 'member_properties':
      return compileProperty(c, f.kind, m, p);
    case 'consents':
      return compileConsent(c, m, p);
    case 'channels':
      return compileColumn(c, f, m, p);
    case 'groups':
      return compileGroups(c, m, p);
    case 'member':
      return f.kind.kind === 'array' ? compileArrayColumn(c, f.column!, m, p) : compileColumn(c, f, m, p);
  }
}

/** `NOT` that treats an unknown (NULL) inner result as false, so negations stay total. */
const not = (expr: string) => `NOT COALESCE(${expr}, false)`;

function compileProperty(c: FieldCondition, kind: Kind, m: string, p: Params): string {
  const field = c.field;
  const op = c.operator;
  if (op === 'exists' || op === 'not_exists') {
    // "Has a value": present, not null, not an empty string / list / object.
    const k = p.add(field, 'text');
    const has = `COALESCE(${m}.properties -> ${k} NOT IN ('null'::jsonb, '""'::jsonb, '[]'::jsonb, '{}'::jsonb), false)`;
    return op === 'exists' ? has : `NOT ${has}`;
  }
  if (kind.kind === 'array') {
    // Containment with a one-element list: served by the jsonb_path_ops GIN index on properties.
    const norm = (x: unknown) => (kind.items === 'email' ? String(x).toLowerCase() : kind.items === 'msisdn' ? normaliseMsisdn(String(x)) : x);
    const doc = (items: unknown[]) => JSON.stringify({ [field]: items.map(norm) });
    const value = c.value as unknown;
    switch (op) {
      case 'contains':
        return `${m}.properties @> ${p.add(doc([value]), 'jsonb')}`;
      case 'match':
        return `${m}.properties @> ${p.add(doc(value as unknown[]), 'jsonb')}`;
      case 'any':
        return `${m}.properties @> ANY(${p.add((value as unknown[]).map((x) => doc([x])), 'jsonb[]')})`;
      case 'none':
        return `NOT (${m}.properties @> ANY(${p.add((value as unknown[]).map((x) => doc([x])), 'jsonb[]')}))`;
    }
  }
  const scalar = kind.kind as ScalarKind;
  // Contact identifiers have their own (indexed) columns, stored normalised.
  if ((scalar === 'msisdn' || scalar === 'email') && (field === 'msisdn' || field === 'email') && op !== 'contains') {
    const norm = (x: unknown) => (scalar === 'msisdn' ? normaliseMsisdn(String(x)) : String(x).toLowerCase());
    const col = `${m}.${field}`;
    switch (op) {
      case 'match':
        return `${col} = ${p.add(norm(c.value), 'text')}`;
      case 'not_match':
        return not(`${col} = ${p.add(norm(c.value), 'text')}`);
      case 'any':
        return `${col} = ANY(${p.add((c.value as unknown[]).map(norm), 'text[]')})`;
      case 'none':
        return not(`${col} = ANY(${p.add((c.value as unknown[]).map(norm), 'text[]')})`);
    }
  }
  const normValue = (x: unknown) => (scalar === 'email' ? String(x).toLowerCase() : scalar === 'msisdn' ? normaliseMsisdn(String(x)) : x);
  const doc = (x: unknown) => JSON.stringify({ [field]: normValue(x) });
  switch (op) {
    case 'match':
      return `${m}.properties @> ${p.add(doc(c.value), 'jsonb')}`;
    case 'not_match':
      return `NOT (${m}.properties @> ${p.add(doc(c.value), 'jsonb')})`;
    case 'any':
      return `${m}.properties @> ANY(${p.add((c.value as unknown[]).map(doc), 'jsonb[]')})`;
    case 'none':
      return `NOT (${m}.properties @> ANY(${p.add((c.value as unknown[]).map(doc), 'jsonb[]')}))`;
    case 'contains': {
      // strpos, not LIKE: the fragment is literal text, no wildcard escaping to get wrong.
      const k = p.add(field, 'text');
      const needle = scalar === 'msisdn' ? String(c.value).replace(/\D/g, '') : String(c.value); // stored digits only
      return `COALESCE(strpos(lower(${m}.properties ->> ${k}), lower(${p.add(needle, 'text')})) > 0, false)`;
    }
  }
  // Comparisons: each type compared as itself; values of another JSON type never match.
  const k = p.add(field, 'text');
  const operand = (x: unknown) => {
    if (scalar === 'number' || scalar === 'integer') return p.add(String(x), 'numeric');
    if (scalar === 'datetime') return p.add(instant(String(x)), 'timestamptz');
    return `(${p.add(String(x), 'text')} COLLATE "C")`;
  };
  let subject: string;
  if (scalar === 'number' || scalar === 'integer') {
    subject = `(CASE WHEN jsonb_typeof(${m}.properties -> ${k}) = 'number' THEN (${m}.properties ->> ${k})::numeric END)`;
  } else if (scalar === 'datetime') {
    subject = `hei_try_timestamptz(${m}.properties ->> ${k})`;
  } else {
    // ISO dates sort correctly byte-wise; the C collation makes that independent of the locale.
    subject = `(CASE WHEN jsonb_typeof(${m}.properties -> ${k}) = 'string' THEN (${m}.properties ->> ${k}) END COLLATE "C")`;
  }
  if (op === 'between') {
    const [lo, hi] = c.value as unknown[];
    return `COALESCE(${subject} BETWEEN ${operand(lo)} AND ${operand(hi)}, false)`;
  }
  return `COALESCE(${subject} ${CMP[op]} ${operand(c.value)}, false)`;
}

function compileConsent(c: FieldCondition, m: string, p: Params): string {
  if (c.operator === 'exists' || c.operator === 'not_exists') {
    const present = `(${m}.consents -> ${p.add(c.field, 'text')}) IS NOT NULL`;
    return c.operator === 'exists' ? present : `NOT ${present}`;
  }
  // "Given" is status true; false matches a refused *or* never recorded consent.
  const wanted = c.operator === 'match' ? c.value === true : c.value !== true;
  const given = `${m}.consents @> ${p.add(JSON.stringify({ [c.field]: { status: true } }), 'jsonb')}`;
  return wanted ? given : `NOT (${given})`;
}

/** Plain (non-array) columns: channel statuses, has_push_token, id, created_at. */
function compileColumn(c: FieldCondition, f: ResolvedField, m: string, p: Params): string {
  const col = `${m}.${f.column}`;
  const cast = f.kind.kind === 'integer' ? 'bigint' : f.kind.kind === 'datetime' ? 'timestamptz' : f.kind.kind === 'boolean' ? 'boolean' : 'text';
  const val = (x: unknown) => (f.kind.kind === 'datetime' ? instant(String(x)) : x);
  switch (c.operator) {
    case 'match':
      return `COALESCE(${col} = ${p.add(val(c.value), cast)}, false)`;
    case 'not_match':
      return not(`${col} = ${p.add(val(c.value), cast)}`);
    case 'any':
      return `COALESCE(${col} = ANY(${p.add((c.value as unknown[]).map(val), `${cast}[]`)}), false)`;
    case 'none':
      return not(`${col} = ANY(${p.add((c.value as unknown[]).map(val), `${cast}[]`)})`);
    case 'between': {
      const [lo, hi] = c.value as unknown[];
      return `COALESCE(${col} BETWEEN ${p.add(val(lo), cast)} AND ${p.add(val(hi), cast)}, false)`;
    }
    default:
      return `COALESCE(${col} ${CMP[c.operator]} ${p.add(val(c.value), cast)}, false)`;
  }
}

function compileArrayColumn(c: FieldCondition, column: string, m: string, p: Params): string {
  const col = `${m}.${column}`;
  switch (c.operator) {
    case 'contains':
      return `${col} @> ${p.add([c.value], 'bigint[]')}`;
    case 'match':
      return `${col} @> ${p.add(c.value, 'bigint[]')}`;
    case 'any':
      return `${col} && ${p.add(c.value, 'bigint[]')}`;
    case 'none':
      return `NOT (${col} && ${p.add(c.value, 'bigint[]')})`;
    case 'exists':
      return `cardinality(${col}) > 0`;
    default:
      return `cardinality(${col}) = 0`;
  }
}

function compileGroups(c: FieldCondition, m: string, p: Params): string {
  // `id IN (uncorrelated subquery)` becomes a semi-join or a hashed subplan (also under OR), so a
  // group condition costs one pass over the groups' memberships, not a lookup per member. Group
  // ids are checked to belong to the club when conditions are saved (checkGroupsExist).
  const members = (filter: string) => `${m}.id IN (SELECT hei_gm.member_id FROM member_group_memberships hei_gm WHERE ${filter})`;
  switch (c.operator) {
    case 'contains':
      return members(`hei_gm.group_id = ${p.add(c.value, 'bigint')}`);
    case 'any':
      return members(`hei_gm.group_id = ANY(${p.add(c.value, 'bigint[]')})`);
    case 'none':
      return `NOT ${members(`hei_gm.group_id = ANY(${p.add(c.value, 'bigint[]')})`)}`;
    case 'match': {
      const ids = [...new Set(c.value as number[])];
      return members(`hei_gm.group_id = ANY(${p.add(ids, 'bigint[]')}) GROUP BY hei_gm.member_id HAVING count(*) = ${p.add(ids.length, 'bigint')}`);
    }
    case 'exists':
      return `EXISTS (SELECT 1 FROM member_group_memberships hei_gm WHERE hei_gm.member_id = ${m}.id)`;
    default:
      return `NOT EXISTS (SELECT 1 FROM member_group_memberships hei_gm WHERE hei_gm.member_id = ${m}.id)`;
  }
}
