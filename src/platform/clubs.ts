// Loyalty clubs: the tenant of every request in LoyaltyClub context.
import type { Queryable } from '../db/connection.ts';
import type { LoyaltyClub } from './context.ts';

const COLUMNS = 'id, slug, name, timezone, languages, default_language, messaging_settings, created_at, updated_at';

export async function findClubBySlug(db: Queryable, slug: string): Promise<LoyaltyClub | null> {
  const { rows } = await db.query<LoyaltyClub>(`SELECT ${COLUMNS} FROM loyalty_clubs WHERE slug = $1`, [slug]);
  return rows[0] ?? null;
}

export async function createClub(
  db: Queryable,
  input: { slug: string; name: string; timezone?: string; languages?: string[]; defaultLanguage?: string; messagingSettings?: object },
): Promise<LoyaltyClub> {
  const languages = input.languages ?? ['en'];
  const { rows } = await db.query<LoyaltyClub>(
    `INSERT INTO loyalty_clubs (slug, name, timezone, languages, default_language, messaging_settings)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${COLUMNS}`,
    [input.slug, input.name, input.timezone ?? 'Europe/Oslo', languages, input.defaultLanguage ?? languages[0], input.messagingSettings ?? {}],
  );
  return rows[0];
}

export async function listClubs(db: Queryable): Promise<LoyaltyClub[]> {
  return (await db.query<LoyaltyClub>(`SELECT ${COLUMNS} FROM loyalty_clubs ORDER BY id`)).rows;
}
