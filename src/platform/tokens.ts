// Client and user tokens: opaque random strings, stored only as SHA-256 hashes.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Queryable } from '../db/connection.ts';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** A base62 random string; 28 characters ≈ 166 bits. */
export function randomToken(length = 28): string {
  const bytes = randomBytes(length * 2);
  let out = '';
  for (let i = 0; out.length < length && i < bytes.length; i++) {
    if (bytes[i] < 248) out += ALPHABET[bytes[i] % 62]; // reject the tail so every letter is equally likely
  }
  return out.length === length ? out : randomToken(length);
}

export const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');

export interface ClientTokenRecord {
  id: number;
  /** The clubs the token may act for; null = every club (an all-clubs token). */
  club_ids: number[] | null;
  club_slugs: string[] | null;
  /** The X-Product-Name it is bound to; null = any product. */
  product: string | null;
  permits: string[];
}

export async function findClientToken(db: Queryable, token: string): Promise<ClientTokenRecord | null> {
  const { rows } = await db.query<ClientTokenRecord & { all_clubs: boolean }>(
    `SELECT t.id, t.product, t.permits, t.all_clubs,
            COALESCE((SELECT jsonb_agg(c.id ORDER BY c.id) FROM client_token_clubs tc JOIN loyalty_clubs c ON c.id = tc.loyalty_club_id WHERE tc.client_token_id = t.id), '[]') AS club_ids,
            COALESCE((SELECT jsonb_agg(c.slug ORDER BY c.id) FROM client_token_clubs tc JOIN loyalty_clubs c ON c.id = tc.loyalty_club_id WHERE tc.client_token_id = t.id), '[]') AS club_slugs
       FROM client_tokens t
      WHERE t.token_hash = $1 AND t.revoked_at IS NULL`,
    [hashToken(token)],
  );
  const r = rows[0];
  if (!r) return null;
  return { id: Number(r.id), product: r.product, permits: r.permits, club_ids: r.all_clubs ? null : r.club_ids!.map(Number), club_slugs: r.all_clubs ? null : r.club_slugs };
}

/** Whether the token may act for this club. */
export const tokenAllowsClub = (t: ClientTokenRecord, clubId: number) => t.club_ids === null || t.club_ids.includes(clubId);

export async function createClientToken(
  db: Queryable,
  input: { clubId?: number; clubIds?: number[]; allClubs?: boolean; product: string | null; permits: string[]; name?: string },
): Promise<{ id: number; token: string }> {
  const clubIds = input.allClubs ? [] : [...new Set([...(input.clubId !== undefined ? [input.clubId] : []), ...(input.clubIds ?? [])])];
  if (!input.allClubs && clubIds.length === 0) throw new Error('a client token needs a club, or allClubs');
  const token = randomToken();
  const { rows } = await db.query<{ id: number }>(
    `INSERT INTO client_tokens (loyalty_club_id, product, name, token_hash, token_prefix, permits, all_clubs)
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
    [clubIds[0] ?? null, input.product, input.name ?? null, hashToken(token), token.slice(0, 6), input.permits, Boolean(input.allClubs)],
  );
  const id = Number(rows[0].id);
  if (clubIds.length) await db.query('INSERT INTO client_token_clubs (client_token_id, loyalty_club_id) SELECT $1, unnest($2::bigint[])', [id, clubIds]);
  return { id, token };
}

export interface UserTokenRecord {
  user_id: string;
  loyalty_club_id: number;
  club_slug: string;
  roles: string[];
  permits: string[];
}

/** The user's effective role permits (union over the user's roles). */
export async function findUserToken(db: Queryable, token: string): Promise<UserTokenRecord | null> {
  const { rows } = await db.query<UserTokenRecord>(
    `SELECT u.id AS user_id, u.loyalty_club_id, (SELECT c.slug FROM loyalty_clubs c WHERE c.id = u.loyalty_club_id) AS club_slug, u.roles,
            COALESCE((SELECT array_agg(DISTINCT p) FROM roles r, unnest(r.permits) p
                       WHERE r.loyalty_club_id = u.loyalty_club_id AND r.name = ANY (u.roles)), '{}') AS permits
       FROM user_tokens t JOIN users u ON u.id = t.user_id
      WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())`,
    [hashToken(token)],
  );
  return rows[0] ?? null;
}

export async function createUserWithToken(
  db: Queryable,
  input: { clubId: number; email?: string; firstName?: string; lastName?: string; roles: string[] },
): Promise<{ id: string; token: string }> {
  const id = randomUUID();
  await db.query(
    `INSERT INTO users (id, loyalty_club_id, email, first_name, last_name, roles) VALUES ($1, $2, $3, $4, $5, $6)`,
    [id, input.clubId, input.email ?? null, input.firstName ?? null, input.lastName ?? null, input.roles],
  );
  const token = randomToken(40);
  await db.query(`INSERT INTO user_tokens (user_id, token_hash) VALUES ($1, $2)`, [id, hashToken(token)]);
  return { id, token };
}
