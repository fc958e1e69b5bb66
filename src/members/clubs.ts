// Loyalty clubs and their products as MPC documents them (2021 › Loyalty Clubs, Products): the
// clubs a token may see, and which member properties a product may read and write.
import type { Queryable } from '../db/connection.ts';
import { Violations } from '../platform/errors.ts';
import type { ClientTokenRecord } from '../platform/tokens.ts';
import type { Member } from './member-input.ts';

export interface LoyaltyClubView {
  id: number;
  community_id: number | null;
  customer_id: number | null;
  main_slug: string;
  short_slug: string | null;
  other_slugs: string[];
  name: string;
  type: string;
  country: string;
  timezone: string;
  member_identifiers: string[];
  new_offers_api_enabled: boolean;
}

const COLUMNS = `c.id, c.community_id, c.customer_id, c.slug AS main_slug, c.short_slug, c.other_slugs, c.name, c.type, c.country, c.timezone,
  COALESCE(c.member_schema -> 'identifiers', '["email", "msisdn"]'::jsonb) AS member_identifiers, c.new_offers_api_enabled`;

/** The clubs a client token may act for (all of them for an all-clubs token), filtered by `type` / `customer_id`. */
export async function listVisibleClubs(
  db: Queryable, client: ClientTokenRecord, q: { type?: string; customer_id?: number; page_no: number; per_page: number },
): Promise<{ clubs: LoyaltyClubView[]; total: number }> {
  const { rows } = await db.query<LoyaltyClubView & { total: number }>(
    `SELECT ${COLUMNS}, count(*) OVER ()::int AS total FROM loyalty_clubs c
      WHERE ($1::bigint[] IS NULL OR c.id = ANY ($1::bigint[])) AND ($2::text IS NULL OR c.type = $2) AND ($3::bigint IS NULL OR c.customer_id = $3)
      ORDER BY c.id LIMIT $4 OFFSET $5`,
    [client.club_ids, q.type ?? null, q.customer_id ?? null, q.per_page, (q.page_no - 1) * q.per_page],
  );
  return { clubs: rows.map(({ total: _t, ...c }) => c), total: rows[0]?.total ?? (await countVisible(db, client, q)) };
}

async function countVisible(db: Queryable, client: ClientTokenRecord, q: { type?: string; customer_id?: number }): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM loyalty_clubs c WHERE ($1::bigint[] IS NULL OR c.id = ANY ($1::bigint[])) AND ($2::text IS NULL OR c.type = $2) AND ($3::bigint IS NULL OR c.customer_id = $3)`,
    [client.club_ids, q.type ?? null, q.customer_id ?? null],
  );
  return rows[0].n;
}

export async function findClubView(db: Queryable, by: { id: number } | { community_id: number }): Promise<LoyaltyClubView | null> {
  const [column, value] = 'id' in by ? ['c.id', by.id] : ['c.community_id', by.community_id];
  const { rows } = await db.query<LoyaltyClubView>(`SELECT ${COLUMNS} FROM loyalty_clubs c WHERE ${column} = $1`, [value]);
  return rows[0] ?? null;
}

export interface Product {
  name: string;
  slug: string;
  filtered_member_properties: string[];
  subproducts: string[];
  is_webform: boolean;
}

export async function listProducts(db: Queryable, clubId: number): Promise<Product[]> {
  const { rows } = await db.query<Product>(
    'SELECT name, slug, filtered_member_properties, subproducts, is_webform FROM products WHERE loyalty_club_id = $1 ORDER BY name',
    [clubId],
  );
  return rows;
}

/** The member properties `product` may read and write in this club; null = all of them. */
export async function propertyFilter(db: Queryable, clubId: number, product: string): Promise<Set<string> | null> {
  const { rows } = await db.query<{ f: string[] }>('SELECT filtered_member_properties AS f FROM products WHERE loyalty_club_id = $1 AND name = $2', [clubId, product]);
  return rows[0]?.f.length ? new Set(rows[0].f) : null;
}

/** The member as the product sees it. */
export function filterMember(member: Member, allowed: Set<string> | null): Member {
  if (!allowed) return member;
  return { ...member, properties: Object.fromEntries(Object.entries(member.properties).filter(([k]) => allowed.has(k))) };
}

/** A write naming a property the product may not touch → 422 `not_permitted` at it. */
export function checkWritable(properties: unknown, allowed: Set<string> | null, prefix: Array<string | number> = []): void {
  if (!allowed || !properties || typeof properties !== 'object') return;
  const v = new Violations();
  for (const key of Object.keys(properties)) if (!allowed.has(key)) v.add([...prefix, 'properties', key], 'not_permitted');
  v.throwIfAny();
}
