// Page-number pagination and allow-listed sorting, shared by every list endpoint.
import { Type, type TProperties, type TObject } from '@sinclair/typebox';
import type { Queryable } from '../db/connection.ts';
import { StringEnum } from './schema.ts';

export interface PaginationInfo {
  total_count: number;
  per_page: number;
  total_pages: number;
  current_page: number;
  next_page: number | null;
  prev_page: number | null;
  is_first_page: boolean;
  is_last_page: boolean;
  is_out_of_range: boolean;
}

export const PaginationInfoSchema = Type.Object({
  total_count: Type.Integer(),
  per_page: Type.Integer(),
  total_pages: Type.Integer(),
  current_page: Type.Integer(),
  next_page: Type.Union([Type.Integer(), Type.Null()]),
  prev_page: Type.Union([Type.Integer(), Type.Null()]),
  is_first_page: Type.Boolean(),
  is_last_page: Type.Boolean(),
  is_out_of_range: Type.Boolean(),
});

export function paginationInfo(total: number, page: number, perPage: number): PaginationInfo {
  const totalPages = Math.ceil(total / perPage);
  const outOfRange = page > Math.max(totalPages, 1);
  return {
    total_count: total,
    per_page: perPage,
    total_pages: totalPages,
    current_page: page,
    next_page: page < totalPages ? page + 1 : null,
    prev_page: page > 1 ? Math.min(page - 1, Math.max(totalPages, 1)) : null,
    is_first_page: page === 1,
    is_last_page: page >= totalPages,
    is_out_of_range: outOfRange,
  };
}

export interface ListOptions<S extends string> {
  defaultPerPage: number;
  maxPerPage: number;
  sortable: readonly S[];
}

/** `page_no`: bounded so that an absurd page is a 422, never an OFFSET overflow. */
export const PageNoSchema = () => Type.Integer({ minimum: 1, maximum: 10_000_000, default: 1 });

export const SORT_DIRECTIONS = ['asc', 'desc'] as const;
export const NULL_POSITIONS = ['first', 'last'] as const;

/**
 * The query schema of a list endpoint: `page_no`, `per_page` (over the maximum → 422), and
 * `sort_by` / `sort_direction` / `null_position`, each a single value or an array (Fastify coerces
 * a single value into a one-element array).
 */
export function listQuery<S extends string, P extends TProperties = {}>(opts: ListOptions<S>, extra?: P): TObject<any> {
  return Type.Object(
    {
      page_no: PageNoSchema(),
      per_page: Type.Integer({ minimum: 1, maximum: opts.maxPerPage, default: opts.defaultPerPage }),
      sort_by: Type.Optional(Type.Array(StringEnum(opts.sortable), { maxItems: 5 })),
      sort_direction: Type.Optional(Type.Array(StringEnum(SORT_DIRECTIONS), { maxItems: 5 })),
      null_position: Type.Optional(Type.Array(StringEnum(NULL_POSITIONS), { maxItems: 5 })),
      ...(extra ?? {}),
    },
    { additionalProperties: false },
  );
}

export interface ListQuery {
  page_no: number;
  per_page: number;
  sort_by?: string[];
  sort_direction?: string[];
  null_position?: string[];
}

/**
 * ORDER BY from allow-listed keys only: `columns` maps each sortable key to its SQL expression, so
 * no request text ever reaches the SQL. Directions and null positions pair with keys by index;
 * a shorter list repeats its last value. `tieBreaker` keeps pages stable.
 */
export function orderBy(q: ListQuery, columns: Record<string, string>, defaults: { by: string; direction?: 'asc' | 'desc' }, tieBreaker = 'id'): string {
  const by = q.sort_by?.length ? q.sort_by : [defaults.by];
  const parts = by.map((key, i) => {
    const column = columns[key];
    if (!column) throw new Error(`sort key ${key} has no column`);
    const dir = q.sort_direction?.[i] ?? q.sort_direction?.at(-1) ?? defaults.direction ?? 'asc';
    const nulls = q.null_position?.[i] ?? q.null_position?.at(-1);
    return `${column} ${dir === 'desc' ? 'DESC' : 'ASC'}${nulls ? (nulls === 'first' ? ' NULLS FIRST' : ' NULLS LAST') : ''}`;
  });
  if (!by.includes(tieBreaker) && columns[tieBreaker]) parts.push(`${columns[tieBreaker]} ASC`);
  return `ORDER BY ${parts.join(', ')}`;
}

/**
 * One page of rows and the total count. `from` is the query's `FROM … WHERE …`, `tail` its
 * ORDER BY / LIMIT / OFFSET. The total rides along as `count(*) OVER ()`; only an empty page (beyond
 * the last) costs a second, counting query. Parameters used only by `tail` come last and are left
 * out of that count: `whereParams` says how many belong to `from` (default: all).
 */
export async function selectPage<T>(db: Queryable, select: string, from: string, tail: string, params: unknown[] = [], whereParams = params.length): Promise<{ rows: T[]; total: number }> {
  const { rows } = await db.query<T & { page_total__: number }>(`SELECT ${select}, count(*) OVER () AS page_total__ ${from} ${tail}`, params);
  if (rows.length === 0) {
    const { rows: count } = await db.query<{ n: number }>(`SELECT count(*)::int AS n ${from}`, params.slice(0, whereParams));
    return { rows: [], total: count[0].n };
  }
  const total = Number(rows[0].page_total__);
  return { rows: rows.map(({ page_total__: _t, ...r }) => r as T), total };
}

export const limitOffset = (q: Pick<ListQuery, 'page_no' | 'per_page'>) => `LIMIT ${Number(q.per_page)} OFFSET ${(Number(q.page_no) - 1) * Number(q.per_page)}`;
