// The demo loyalty club `infinity-mall`, created when the database holds no club.
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Queryable } from './db/connection.ts';
import type { LoyaltyClub } from './platform/context.ts';
import { createClub, findClubBySlug } from './platform/clubs.ts';
import { createClientToken, createUserWithToken } from './platform/tokens.ts';
import { seedMembers } from './members/seed.ts';
import { seedExampleMessage } from './messaging/seed.ts';

export const DEMO_SLUG = 'infinity-mall';
export const DEMO_PRODUCT = 'default';

/** Further demo data from other domains (member schema, members, messages), run in order. */
export type SeedStep = (db: Queryable, club: LoyaltyClub) => Promise<void>;
const SEED_STEPS: SeedStep[] = [seedMembers, seedExampleMessage];

export const DEMO_MESSAGING_SETTINGS = {
  channels: {
    sms: { enabled: true, default_sender: { type: 'alphanumeric', value: 'InfinityMal' } },
    email: { enabled: true, from_email: 'news@infinity-mall.example', from_name: 'Infinity Mall' },
    push: { enabled: true },
  },
  shortener: { enabled: true },
};

export interface SeedResult {
  club: LoyaltyClub;
  created: boolean;
  clientToken?: string;
  userToken?: string;
}

/**
 * `onlyIfEmpty`: `hei serve` seeds only a database without any club, so that a real installation
 * never gets a demo club; `hei seed` adds it whenever it is missing.
 */
export async function seedDemo(db: Queryable, permits: string[], opts: { onlyIfEmpty?: boolean } = {}): Promise<SeedResult | null> {
  const existing = await findClubBySlug(db, DEMO_SLUG);
  if (existing) return { club: existing, created: false };
  if (opts.onlyIfEmpty && (await db.query('SELECT 1 FROM loyalty_clubs LIMIT 1')).rowCount > 0) return null;
  const club = await createClub(db, {
    slug: DEMO_SLUG,
    name: 'Infinity Mall',
    timezone: 'Europe/Oslo',
    languages: ['en', 'no'],
    defaultLanguage: 'en',
    messagingSettings: DEMO_MESSAGING_SETTINGS,
  });
  const { token } = await createClientToken(db, { clubId: club.id, product: DEMO_PRODUCT, permits, name: 'demo' });
  await db.query(`INSERT INTO roles (loyalty_club_id, name, permits) VALUES ($1, 'admin', $2)`, [club.id, permits]);
  const user = await createUserWithToken(db, { clubId: club.id, email: 'admin@infinity-mall.example', firstName: 'Demo', lastName: 'Admin', roles: ['admin'] });
  for (const step of SEED_STEPS) await step(db, club);
  return { club, created: true, clientToken: token, userToken: user.token };
}

/** The embedded demo keeps its plain tokens in the data folder so every start can print them. */
export function rememberDemoTokens(dataDir: string, tokens: { clientToken?: string; userToken?: string }): void {
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(join(dataDir, 'demo-tokens.json'), JSON.stringify(tokens, null, 2) + '\n', { mode: 0o600 });
}

export function recallDemoTokens(dataDir: string): { clientToken?: string; userToken?: string } | null {
  const file = join(dataDir, 'demo-tokens.json');
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : null;
}
