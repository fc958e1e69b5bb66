// Schema helpers shared by every domain's TypeBox definitions.
import { Type, type SchemaOptions, type Static, type TSchema, type TUnsafe } from '@sinclair/typebox';

/**
 * A string enum as a plain JSON-schema `enum` (not a union of literals), so a wrong value is one
 * `inclusion` error with the allowed values, and OpenAPI shows a simple enum.
 */
export function StringEnum<T extends string>(values: readonly T[], options: SchemaOptions = {}): TUnsafe<T> {
  return Type.Unsafe<T>({ type: 'string', enum: [...values], ...options });
}

/** `T | null`, written as a type list so validation errors stay on the field, not on a union. */
export function Nullable<T extends TSchema>(schema: T): TUnsafe<Static<T> | null> {
  const type = (schema as any).type;
  if (type === undefined) return Type.Unsafe<Static<T> | null>({ anyOf: [schema, { type: 'null' }] });
  return Type.Unsafe<Static<T> | null>({ ...schema, type: Array.isArray(type) ? [...type, 'null'] : [type, 'null'] });
}

export const Timestamp = Type.String({ format: 'date-time' });

/** A stored time as the API shows every timestamp: ISO 8601, UTC, milliseconds; null stays null. */
export const iso = (d: Date | string | null | undefined): string | null => (d == null ? null : new Date(d).toISOString());
/**
 * Every id the API accepts, in a path, a query or a body: 1 … 2^53−1. Ids are bigint in the store
 * but JSON numbers on the wire, so anything above the largest exact double is refused at the edge
 * (422 in a query or body, 404 in a path) instead of reaching PostgreSQL.
 */
export const MAX_ID = Number.MAX_SAFE_INTEGER;
export const Id = Type.Integer({ minimum: 1, maximum: MAX_ID });
