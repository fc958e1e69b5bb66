// The loyalty club's member schema (members-api §3): which properties a member has and their
// types, the identifiers, the consents and the languages. Stored in `loyalty_clubs.member_schema`
// in the documented JSON format; the audiences module reads the same column.
import type { Queryable } from '../db/connection.ts';
import { Violations } from '../platform/errors.ts';

export interface ConsentDefinition {
  version: string;
  required: boolean;
  show_in_profile: boolean;
  show_at_registration: boolean;
}

export type PropertyType = 'string' | 'integer' | 'number' | 'boolean' | 'array';
export type ScalarFormat = 'email' | 'msisdn' | 'date' | 'date-time';

export interface ScalarDefinition {
  type: Exclude<PropertyType, 'array'>;
  format?: ScalarFormat;
  enum?: Array<string | number | boolean>;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  title?: string;
  description?: string;
}

export interface ArrayDefinition {
  type: 'array';
  items: ScalarDefinition;
  minItems?: number;
  maxItems?: number;
  uniqueItems?: boolean;
  title?: string;
  description?: string;
}

export type PropertyDefinition = ScalarDefinition | ArrayDefinition;

export interface MemberSchema {
  $schema?: string;
  type?: 'object';
  version?: string;
  identifiers: string[];
  consents: Record<string, ConsentDefinition>;
  languages: string[];
  default_language: string;
  products?: Record<string, unknown>;
  properties: Record<string, PropertyDefinition>;
  required: string[];
}

/** Properties that identify a member besides its id; both are unique within a club. */
export const IDENTIFIER_PROPERTIES = ['email', 'msisdn'] as const;

const NAME = /^[a-z][a-z0-9_]{0,63}$/;
const SCALAR_TYPES = ['string', 'integer', 'number', 'boolean'];
const FORMATS = ['email', 'msisdn', 'date', 'date-time'];
const SCALAR_KEYS = new Set(['type', 'format', 'enum', 'minLength', 'maxLength', 'pattern', 'minimum', 'maximum', 'title', 'description']);
const ARRAY_KEYS = new Set(['type', 'items', 'minItems', 'maxItems', 'uniqueItems', 'title', 'description']);
const TOP_KEYS = new Set(['$schema', 'type', 'version', 'identifiers', 'consents', 'languages', 'default_language', 'products', 'properties', 'required']);
const CONSENT_KEYS = ['version', 'required', 'show_in_profile', 'show_at_registration'] as const;

/**
 * The schema in force for a club: the stored document, with `languages` / `default_language`
 * taken from the club when the document does not fix them.
 */
export function effectiveSchema(stored: Record<string, any> | null, club: { languages: string[]; default_language: string }): MemberSchema {
  const s = stored ?? {};
  const languages: string[] = Array.isArray(s.languages) && s.languages.length ? s.languages : club.languages;
  return {
    ...s,
    identifiers: Array.isArray(s.identifiers) ? s.identifiers : ['email', 'msisdn'],
    // Looked up by names from requests: own entries only, never `constructor` or `toString`.
    consents: ownEntries(s.consents && typeof s.consents === 'object' ? s.consents : {}),
    languages,
    default_language: typeof s.default_language === 'string' ? s.default_language : languages.includes(club.default_language) ? club.default_language : languages[0],
    properties: ownEntries(s.properties && typeof s.properties === 'object' ? s.properties : {}),
    required: Array.isArray(s.required) ? s.required : [],
  } as MemberSchema;
}

const ownEntries = <T extends object>(o: T): T => Object.assign(Object.create(null), o);

export async function loadMemberSchema(db: Queryable, clubId: number): Promise<MemberSchema> {
  const { rows } = await db.query<{ member_schema: Record<string, any>; languages: string[]; default_language: string }>(
    'SELECT member_schema, languages, default_language FROM loyalty_clubs WHERE id = $1',
    [clubId],
  );
  if (!rows[0]) throw new Error(`loyalty club ${clubId} does not exist`);
  return effectiveSchema(rows[0].member_schema, rows[0]);
}

export async function saveMemberSchema(db: Queryable, clubId: number, schema: MemberSchema): Promise<void> {
  await db.query('UPDATE loyalty_clubs SET member_schema = $2, updated_at = now() WHERE id = $1', [clubId, schema]);
}

const isInt = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;

function checkScalar(def: Record<string, any>, path: Array<string | number>, v: Violations): void {
  for (const key of Object.keys(def)) if (!SCALAR_KEYS.has(key)) v.add([...path, key], 'not_permitted');
  if (!SCALAR_TYPES.includes(def.type)) return void v.add([...path, 'type'], 'inclusion', { in: [...SCALAR_TYPES, 'array'] });
  if (def.format !== undefined && (def.type !== 'string' || !FORMATS.includes(def.format))) v.add([...path, 'format'], 'inclusion', { in: FORMATS });
  if (def.enum !== undefined) {
    const kind = def.type === 'integer' ? 'number' : def.type;
    if (!Array.isArray(def.enum) || def.enum.length === 0 || def.enum.some((e: unknown) => typeof e !== kind || (def.type === 'integer' && !Number.isInteger(e)))) {
      v.add([...path, 'enum'], 'invalid');
    }
  }
  for (const key of ['minLength', 'maxLength'] as const) if (def[key] !== undefined && (!isInt(def[key]) || def.type !== 'string')) v.add([...path, key], 'invalid');
  for (const key of ['minimum', 'maximum'] as const) {
    if (def[key] !== undefined && (typeof def[key] !== 'number' || (def.type !== 'integer' && def.type !== 'number'))) v.add([...path, key], 'invalid');
  }
  if (def.pattern !== undefined) {
    try {
      if (typeof def.pattern !== 'string' || def.pattern.length > 200 || def.type !== 'string') throw new Error();
      new RegExp(def.pattern, 'u');
    } catch {
      v.add([...path, 'pattern'], 'invalid');
    }
  }
}

/** Checks a schema document submitted for a club; returns it normalised or throws the 422 tree. */
export function checkMemberSchema(input: Record<string, any>, club: { languages: string[]; default_language: string }): MemberSchema {
  const v = new Violations();
  for (const key of Object.keys(input)) if (!TOP_KEYS.has(key)) v.add([key], 'not_permitted');
  const props = input.properties;
  if (!props || typeof props !== 'object' || Array.isArray(props)) v.add(['properties'], 'blank');
  else {
    for (const [name, def] of Object.entries<any>(props)) {
      const path = ['properties', name];
      if (!NAME.test(name)) v.add(path, 'invalid_format', { format: `/${NAME.source}/` });
      if (!def || typeof def !== 'object' || Array.isArray(def)) {
        v.add(path, 'invalid');
        continue;
      }
      if (def.type === 'array') {
        for (const key of Object.keys(def)) if (!ARRAY_KEYS.has(key)) v.add([...path, key], 'not_permitted');
        if (!def.items || typeof def.items !== 'object' || Array.isArray(def.items)) v.add([...path, 'items'], 'blank');
        else checkScalar(def.items, [...path, 'items'], v);
        for (const key of ['minItems', 'maxItems'] as const) if (def[key] !== undefined && !isInt(def[key])) v.add([...path, key], 'invalid');
        if (def.uniqueItems !== undefined && typeof def.uniqueItems !== 'boolean') v.add([...path, 'uniqueItems'], 'invalid');
      } else checkScalar(def, path, v);
    }
    // Identifiers are stored in dedicated columns and compared normalised: their format is fixed.
    if (props.email && (props.email.type !== 'string' || props.email.format !== 'email')) v.add(['properties', 'email', 'format'], 'inclusion', { in: ['email'] });
    if (props.msisdn && (props.msisdn.type !== 'string' || props.msisdn.format !== 'msisdn')) v.add(['properties', 'msisdn', 'format'], 'inclusion', { in: ['msisdn'] });
  }
  const identifiers = input.identifiers ?? ['email', 'msisdn'];
  if (!Array.isArray(identifiers) || identifiers.length === 0) v.add(['identifiers'], 'blank');
  else {
    identifiers.forEach((id: unknown, i: number) => {
      if (typeof id !== 'string' || !(IDENTIFIER_PROPERTIES as readonly string[]).includes(id)) v.add(['identifiers', i], 'inclusion', { in: IDENTIFIER_PROPERTIES });
      else if (props && typeof props === 'object' && !props[id]) v.add(['identifiers', i], 'does_not_exist');
    });
  }
  const consents = input.consents ?? {};
  const normalisedConsents: Record<string, ConsentDefinition> = {};
  if (typeof consents !== 'object' || Array.isArray(consents)) v.add(['consents'], 'invalid');
  else {
    for (const [name, def] of Object.entries<any>(consents)) {
      if (!NAME.test(name)) v.add(['consents', name], 'invalid_format', { format: `/${NAME.source}/` });
      if (!def || typeof def !== 'object' || Array.isArray(def)) {
        v.add(['consents', name], 'invalid');
        continue;
      }
      for (const key of Object.keys(def)) if (!(CONSENT_KEYS as readonly string[]).includes(key)) v.add(['consents', name, key], 'not_permitted');
      if (def.version !== undefined && typeof def.version !== 'string') v.add(['consents', name, 'version'], 'invalid', { format: 'string' });
      for (const key of ['required', 'show_in_profile', 'show_at_registration'] as const) {
        if (def[key] !== undefined && typeof def[key] !== 'boolean') v.add(['consents', name, key], 'invalid', { format: 'boolean' });
      }
      normalisedConsents[name] = {
        version: def.version ?? '',
        required: def.required ?? false,
        show_in_profile: def.show_in_profile ?? true,
        show_at_registration: def.show_at_registration ?? true,
      };
    }
  }
  const languages = input.languages ?? club.languages;
  if (!Array.isArray(languages) || languages.length === 0 || languages.some((l: unknown) => typeof l !== 'string' || !/^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$/.test(l))) {
    v.add(['languages'], 'invalid');
  }
  const defaultLanguage = input.default_language ?? (Array.isArray(languages) ? languages[0] : undefined);
  if (Array.isArray(languages) && !languages.includes(defaultLanguage)) v.add(['default_language'], 'inclusion', { in: languages });
  const required = input.required ?? [];
  if (!Array.isArray(required)) v.add(['required'], 'invalid');
  else required.forEach((r: unknown, i: number) => {
    if (typeof r !== 'string' || !props || typeof props !== 'object' || !props[r]) v.add(['required', i], 'does_not_exist');
  });
  if (input.version !== undefined && typeof input.version !== 'string') v.add(['version'], 'invalid', { format: 'string' });
  if (input.products !== undefined && (typeof input.products !== 'object' || Array.isArray(input.products) || input.products === null)) v.add(['products'], 'invalid');
  v.throwIfAny();
  return {
    $schema: input.$schema ?? 'http://json-schema.org/draft-04/schema#',
    type: 'object',
    version: input.version ?? 'v2',
    identifiers,
    consents: normalisedConsents,
    languages,
    default_language: defaultLanguage,
    ...(input.products !== undefined ? { products: input.products } : {}),
    properties: props,
    required,
  };
}

/** The demo club's schema (seed). */
export function demoMemberSchema(languages: string[], defaultLanguage: string): MemberSchema {
  const consent = (show = true): ConsentDefinition => ({ version: '', required: false, show_in_profile: show, show_at_registration: show });
  return {
    $schema: 'http://json-schema.org/draft-04/schema#',
    type: 'object',
    version: 'v2',
    identifiers: ['email', 'msisdn'],
    consents: { sms_marketing: consent(), email_marketing: consent(), push_marketing: consent() },
    languages,
    default_language: defaultLanguage,
    properties: {
      email: { type: 'string', format: 'email' },
      msisdn: { type: 'string', format: 'msisdn' },
      first_name: { type: 'string', minLength: 1, maxLength: 100 },
      last_name: { type: 'string', minLength: 1, maxLength: 100 },
      birthday: { type: 'string', format: 'date' },
      gender: { type: 'string', enum: ['man', 'woman', 'other'] },
      language: { type: 'string', enum: languages },
      interests: {
        type: 'array',
        uniqueItems: true,
        items: { type: 'string', enum: ['fashion', 'sportswear', 'food_and_drinks', 'kids', 'electronics', 'beauty', 'home_and_interior', 'bikes_and_cars'] },
      },
      child_birth_years: { type: 'array', items: { type: 'integer', minimum: 1900, maximum: 2100 } },
      postal_code: { type: 'string', pattern: '^[0-9]{4}$' },
    },
    required: ['first_name'],
  };
}
