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
  loyalty_club_id: number;
  club_slug: string;
  product: string;
  permits: string[];
}

export async function findClientToken(db: Queryable, token: string): Promise<ClientTokenRecord | null> {
  const { rows } = await db.query<ClientTokenRecord>(
    `SELECT t.id, t.loyalty_club_id, c.slug AS club_slug, t.product, t.permits
       FROM client_tokens t JOIN loyalty_clubs c ON c.id = t.loyalty_club_id
      WHERE t.token_hash = $1 AND t.revoked_at IS NULL`,
    [hashToken(token)],
  );
  return rows[0] ?? null;
}

export async function createClientToken(
  db: Queryable,
  input: { clubId: number; product: string; permits: string[]; name?: string },
): Promise<{ id: number; token: string }> {
  const token = randomToken();
  const { rows } = await db.query<{ id: number }>(
    `INSERT INTO client_tokens (loyalty_club_id, product, name, token_hash, token_prefix, permits)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
    [input.clubId, input.product, input.name ?? null, hashToken(token), token.slice(0, 6), input.permits],
  );
  return { id: rows[0].id, token };
}

export interface UserTokenRecord {
  user_id: string;
  loyalty_club_id: number;
  roles: string[];
  permits: string[];
}

/** The user's effective role permits (union over the user's roles). */
export async function findUserToken(db: Queryable, token: string): Promise<UserTokenRecord | null> {
  const { rows } = await db.query<UserTokenRecord>(
    `SELECT u.id AS user_id, u.loyalty_club_id, u.roles,
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
