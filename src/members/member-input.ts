// Validation and normalisation of member properties and consents against the club schema.
// Shared by the HTTP endpoints (errors become the 422 tree) and the import processor (errors
// become a member's entry in `members_errors`), so both accept exactly the same members.
import { Violations } from '../platform/errors.ts';
import type { ConsentDefinition, MemberSchema, PropertyDefinition, ScalarDefinition } from './schema.ts';

export interface ConsentState {
  status: boolean;
  updated_at: string;
}

/** A member as the API shows it (members-api.md §2). */
export interface Member {
  id: number;
  properties: Record<string, unknown>;
  consents: Record<string, ConsentState>;
  sms_status: string;
  email_status: string;
  push_status: string;
  optin_channel: string | null;
  optin_subchannel: string | null;
  created_at: string;
  updated_at: string;
  banned_until: string | null;
  /** Assigned by the server, never by a payload. */
  person_id: number | null;
  has_password: boolean;
  subunit_ids: number[];
  has_push_token: boolean;
  social_logins: string[];
  favorite_stores: number[];
  /** Groups the member belongs to (the Reporting API's `group_ids`). */
  group_ids: number[];
}

export type Path = Array<string | number>;

const MSISDN = /^[1-9]\d{6,14}$/;
// Pragmatic address check: one @, no spaces or specials in the local part, a dotted DNS domain.
const EMAIL = /^[a-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/;
/** Strings without a schema maximum are still bounded. */
const MAX_STRING = 10_000;
const MAX_ARRAY = 1_000;

/** `+47 407 69 126`, `0047-40769126`, `4740769126` → `4740769126`; null when it is no MSISDN. */
export function normaliseMsisdn(raw: string): string | null {
  let s = raw.trim().replace(/[\s\-().]/g, '');
  if (s.startsWith('+')) s = s.slice(1);
  else if (s.startsWith('00')) s = s.slice(2);
  return MSISDN.test(s) ? s : null;
}

/** Trimmed and lower-cased; null when it is no e-mail address. */
export function normaliseEmail(raw: string): string | null {
  const s = raw.trim().toLowerCase();
  if (s.length > 254 || !EMAIL.test(s) || s.includes('..') || s.startsWith('.') || s.split('@')[0].endsWith('.')) return null;
  return s;
}

export function isValidDate(s: string): boolean {
  const m = DATE.exec(s);
  if (!m) return false;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return d.getUTCFullYear() === Number(m[1]) && d.getUTCMonth() === Number(m[2]) - 1 && d.getUTCDate() === Number(m[3]);
}

export const isValidDateTime = (s: string) => DATE_TIME.test(s) && !Number.isNaN(Date.parse(s));

function checkScalar(def: ScalarDefinition, value: unknown, path: Path, v: Violations, schema: MemberSchema, name: string): unknown {
  let out: unknown = value;
  switch (def.type) {
    case 'string': {
      if (typeof value !== 'string') return void v.add(path, 'invalid', { format: 'string' });
      if (def.format === 'email') {
        out = normaliseEmail(value);
        if (out === null) return void v.add(path, 'invalid_format', { format: 'email' });
      } else if (def.format === 'msisdn') {
        out = normaliseMsisdn(value);
        if (out === null) return void v.add(path, 'invalid_msisdn');
      } else if (def.format === 'date') {
        if (!isValidDate(value)) return void v.add(path, 'invalid_format', { format: 'date' });
      } else if (def.format === 'date-time') {
        if (!isValidDateTime(value)) return void v.add(path, 'invalid_format', { format: 'date-time' });
      }
      const s = out as string;
      if (def.minLength !== undefined && s.length < def.minLength) v.add(path, def.minLength === 1 ? 'blank' : 'too_short', def.minLength === 1 ? undefined : { min_length: def.minLength });
      if (s.length > (def.maxLength ?? MAX_STRING)) v.add(path, 'too_long', { max_length: def.maxLength ?? MAX_STRING });
      if (def.pattern !== undefined && !new RegExp(def.pattern, 'u').test(s)) v.add(path, 'invalid_format', { format: `/${def.pattern}/` });
      break;
    }
    case 'integer':
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) return void v.add(path, 'invalid', { format: 'integer' });
      break;
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) return void v.add(path, 'invalid', { format: 'number' });
      break;
    case 'boolean':
      if (typeof value !== 'boolean') return void v.add(path, 'invalid', { format: 'boolean' });
      break;
    default:
      return void v.add(path, 'invalid');
  }
  if (typeof out === 'number') {
    if (def.minimum !== undefined && out < def.minimum) v.add(path, 'greater_or_equal_to', { number: def.minimum });
    if (def.maximum !== undefined && out > def.maximum) v.add(path, 'less_or_equal_to', { number: def.maximum });
  }
  if (def.enum !== undefined && !def.enum.includes(out as any)) v.add(path, 'inclusion', { in: def.enum });
  // The member's language must be one the club speaks, whatever the property definition says.
  if (name === 'language' && path.length === 2 && !schema.languages.includes(out as string)) {
    v.add(path, 'value_not_match', { value: out, values: schema.languages.join(', '), property: 'language' });
  }
  return out;
}

/** The normalised value, or undefined when it has errors (added to `v`). */
function checkValue(def: PropertyDefinition, value: unknown, path: Path, v: Violations, schema: MemberSchema, name: string): unknown {
  const local = new Violations();
  const out = checkValueInto(def, value, path, local, schema, name);
  if (local.empty) return out;
  v.merge([], local);
  return undefined;
}

function checkValueInto(def: PropertyDefinition, value: unknown, path: Path, v: Violations, schema: MemberSchema, name: string): unknown {
  if (def.type !== 'array') return checkScalar(def, value, path, v, schema, name);
  if (!Array.isArray(value)) return void v.add(path, 'invalid', { format: 'array' });
  if (value.length > (def.maxItems ?? MAX_ARRAY)) return void v.add(path, 'too_long', { max_length: def.maxItems ?? MAX_ARRAY });
  if (def.minItems !== undefined && value.length < def.minItems) v.add(path, 'too_short', { min_length: def.minItems });
  const items = value.map((item, i) => checkScalar(def.items, item, [...path, i], v, schema, name));
  if (def.uniqueItems && new Set(items.map((i) => JSON.stringify(i))).size !== items.length) v.add(path, 'must_be_unique');
  return items;
}

const present = (value: unknown) => value !== undefined && value !== null && value !== '' && !(Array.isArray(value) && value.length === 0);

export interface MemberStateInput {
  properties?: Record<string, unknown> | null;
  consents?: Record<string, unknown> | null;
}

export interface MemberState {
  properties: Record<string, unknown>;
  consents: Record<string, ConsentState>;
}

export interface ValidateOptions {
  /** The member as stored (update); absent on create. */
  existing?: MemberState;
  /** Validate only the submitted attributes (`validate_partially`). */
  partial?: boolean;
  /** Skip the schema's `required` properties and required consents (`ignore_required_properties`). */
  ignoreRequired?: boolean;
  /** `updated_at` of consents that change. */
  now: string;
  /** `append` adds to array properties instead of replacing them (imports). */
  arrays?: 'replace' | 'append';
}

/**
 * Validates submitted properties / consents and returns the member's resulting state. Errors are
 * added to `v` under `properties.<name>` / `consents.<name>` (prefixed by `prefix`).
 * `null` for a property removes it.
 */
export function resolveMemberState(schema: MemberSchema, input: MemberStateInput, opts: ValidateOptions, v: Violations, prefix: Path = []): MemberState {
  const submitted = input.properties ?? {};
  const creating = !opts.existing;
  const properties: Record<string, unknown> = creating ? {} : { ...opts.existing!.properties };
  if (typeof submitted !== 'object' || Array.isArray(submitted)) v.add([...prefix, 'properties'], 'invalid', { format: 'object' });
  else {
    for (const [name, value] of Object.entries(submitted)) {
      const def = schema.properties[name];
      const path = [...prefix, 'properties', name];
      if (!def) {
        v.add(path, 'not_permitted');
        continue;
      }
      if (value === null) {
        delete properties[name];
        continue;
      }
      const checked = checkValue(def, value, path, v, schema, name);
      if (checked === undefined) continue;
      if (opts.arrays === 'append' && def.type === 'array' && Array.isArray(properties[name])) {
        const merged = [...(properties[name] as unknown[])];
        for (const item of checked as unknown[]) if (!merged.some((m) => JSON.stringify(m) === JSON.stringify(item))) merged.push(item);
        properties[name] = merged;
      } else properties[name] = checked;
    }
  }
  const wasSubmitted = (name: string) => typeof submitted === 'object' && !Array.isArray(submitted) && present((submitted as Record<string, unknown>)[name]);
  if (creating && properties.language === undefined && schema.properties.language) properties.language = schema.default_language;

  if (!opts.partial) {
    // Full validation: stored values must satisfy the schema as it is now.
    if (!creating) {
      for (const [name, value] of Object.entries(properties)) {
        if (submitted && typeof submitted === 'object' && name in submitted) continue;
        const def = schema.properties[name];
        if (!def) v.add([...prefix, 'properties', name], 'not_permitted');
        else checkValue(def, value, [...prefix, 'properties', name], v, schema, name);
      }
    }
    if (!opts.ignoreRequired) {
      // A property submitted with an invalid value already has its error.
      for (const name of schema.required) if (!present(properties[name]) && !wasSubmitted(name)) v.add([...prefix, 'properties', name], 'blank');
    }
  }
  // A member is always reachable by at least one identifier of the schema (or by id alone when
  // the schema defines none).
  const identifiers = schema.identifiers.filter((i) => schema.properties[i]);
  if (identifiers.length && !identifiers.some((i) => present(properties[i]) || wasSubmitted(i))) {
    const touched = creating || identifiers.some((i) => submitted && typeof submitted === 'object' && i in submitted);
    if (touched || !opts.partial) for (const i of identifiers) v.add([...prefix, 'properties', i], 'blank');
  }

  const consents = resolveConsents(schema, input.consents, opts, v, prefix);
  return { properties, consents };
}

function resolveConsents(schema: MemberSchema, input: Record<string, unknown> | null | undefined, opts: ValidateOptions, v: Violations, prefix: Path): Record<string, ConsentState> {
  const consents: Record<string, ConsentState> = { ...(opts.existing?.consents ?? {}) };
  const submitted = input ?? {};
  if (typeof submitted !== 'object' || Array.isArray(submitted)) {
    v.add([...prefix, 'consents'], 'invalid', { format: 'object' });
    return consents;
  }
  for (const [name, raw] of Object.entries(submitted)) {
    const path = [...prefix, 'consents', name];
    if (!schema.consents[name]) {
      v.add(path, 'not_permitted');
      continue;
    }
    // Accepted shapes: `true`, `{"status": true}`, `{"status": true, "updated_at": "…"}`.
    let status: unknown = raw;
    let updatedAt: string | undefined;
    if (raw !== null && typeof raw === 'object' && !Array.isArray(raw)) {
      const obj = raw as Record<string, unknown>;
      for (const key of Object.keys(obj)) if (key !== 'status' && key !== 'updated_at') v.add([...path, key], 'not_permitted');
      status = obj.status;
      if (obj.updated_at !== undefined) {
        if (typeof obj.updated_at !== 'string' || !isValidDateTime(obj.updated_at)) v.add([...path, 'updated_at'], 'invalid_format', { format: 'date-time' });
        else updatedAt = new Date(obj.updated_at).toISOString();
      }
      if (status === undefined) {
        v.add([...path, 'status'], 'blank');
        continue;
      }
    }
    if (typeof status !== 'boolean') {
      v.add(raw !== null && typeof raw === 'object' ? [...path, 'status'] : path, 'invalid', { format: 'boolean' });
      continue;
    }
    const previous = consents[name];
    if (previous && previous.status === status && !updatedAt) continue; // unchanged: keep its time
    consents[name] = { status, updated_at: updatedAt ?? opts.now };
  }
  if (!opts.existing && !opts.ignoreRequired && !opts.partial) {
    for (const [name, def] of Object.entries<ConsentDefinition>(schema.consents)) {
      if (!def.required) continue;
      if (!consents[name]) v.add([...prefix, 'consents', name], 'blank');
      else if (!consents[name].status) v.add([...prefix, 'consents', name], 'accepted');
    }
  }
  return consents;
}

export type ChannelStatus = string;

export interface ChannelSwitches {
  sms_enabled?: boolean | null;
  email_enabled?: boolean | null;
  push_enabled?: boolean | null;
}

export interface ChannelStatuses {
  sms_status: ChannelStatus;
  email_status: ChannelStatus;
  push_status: ChannelStatus;
}

/**
 * Channel statuses after a write. `*_enabled: false` disables; `true` re-enables a disabled
 * channel but never clears `verified` or `hard_bounced` by itself. A new address starts over as
 * `enabled` (a new number is not verified, a new e-mail has not bounced) unless disabled.
 */
export function resolveChannelStatuses(
  existing: (ChannelStatuses & { email?: unknown; msisdn?: unknown }) | null,
  switches: ChannelSwitches,
  after: { email?: unknown; msisdn?: unknown },
): ChannelStatuses {
  const one = (current: string | undefined, enabled: boolean | null | undefined, addressChanged: boolean): string => {
    if (enabled === false) return 'disabled';
    if (current === undefined) return 'enabled';
    if (enabled === true && current === 'disabled') return 'enabled';
    if (addressChanged && current !== 'disabled') return 'enabled';
    return current;
  };
  return {
    sms_status: one(existing?.sms_status, switches.sms_enabled, Boolean(existing) && present(after.msisdn) && after.msisdn !== existing!.msisdn),
    email_status: one(existing?.email_status, switches.email_enabled, Boolean(existing) && present(after.email) && after.email !== existing!.email),
    push_status: one(existing?.push_status, switches.push_enabled, false),
  };
}
