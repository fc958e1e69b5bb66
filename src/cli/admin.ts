// `hei seed | clubs | tokens | roles | users | permits`: administration that the public API
// deliberately does not offer (tokens are issued by the operator, never over HTTP).
import type { Command } from 'commander';
import { buildApp } from '../app.ts';
import type { Database } from '../db/connection.ts';
import { loadConfig } from '../platform/config.ts';
import { createClub, findClubBySlug, listClubs } from '../platform/clubs.ts';
import { isValidProductName, isValidSlug } from '../platform/headers.ts';
import { allPermits } from '../platform/permits.ts';
import { createClientToken, createUserWithToken } from '../platform/tokens.ts';
import { openStore } from '../runtime.ts';
import { rememberDemoTokens, seedDemo } from '../seed.ts';
import { UsageError } from './usage.ts';

const collect = (value: string, previous: string[] = []) => [...previous, value];
const out = (s: string): void => void process.stdout.write(s + '\n');

async function withStore<T>(fn: (db: Database, permits: string[]) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const { db } = await openStore(config);
  try {
    const app = await buildApp({ db, config, logger: false });
    const permits = allPermits(app);
    await app.close();
    return await fn(db, permits);
  } finally {
    await db.close();
  }
}

async function clubId(db: Database, slug: string): Promise<number> {
  const club = await findClubBySlug(db, slug);
  if (!club) throw new UsageError(`no loyalty club with slug "${slug}" (see: hei clubs list)`);
  return club.id;
}

function checkPermits(requested: string[], known: string[]): void {
  const unknown = requested.filter((p) => !known.includes(p));
  if (unknown.length) throw new UsageError(`unknown permit(s): ${unknown.join(', ')} (see: hei permits)`);
}

export function registerAdminCommands(program: Command): void {
  program
    .command('seed')
    .description('create the demo loyalty club infinity-mall when it does not exist')
    .action(() =>
      withStore(async (db, permits) => {
        const r = (await seedDemo(db, permits))!;
        if (!r.created) return out(`demo club ${r.club.slug} exists already`);
        if (!loadConfig().databaseUrl) rememberDemoTokens(loadConfig().dataDir, r);
        out(`created demo club ${r.club.slug}\nclient token: ${r.clientToken}\nuser token:   ${r.userToken}`);
      }),
    );

  program.command('permits').description('list every permit the API knows').action(() => withStore(async (_db, permits) => out(permits.join('\n'))));

  const clubs = program.command('clubs').description('loyalty clubs');
  clubs
    .command('create')
    .requiredOption('--slug <slug>', 'URL-safe identifier, e.g. infinity-mall')
    .requiredOption('--name <name>', 'display name')
    .option('--timezone <tz>', 'IANA time zone', 'Europe/Oslo')
    .option('--languages <list>', 'comma-separated IETF tags', 'en')
    .option('--default-language <tag>')
    .action((o) =>
      withStore(async (db) => {
        if (!isValidSlug(o.slug)) throw new UsageError(`invalid slug "${o.slug}": use lower-case letters, digits and single dashes`);
        if (await findClubBySlug(db, o.slug)) throw new UsageError(`a loyalty club with slug "${o.slug}" exists already`);
        try {
          new Intl.DateTimeFormat('en', { timeZone: o.timezone });
        } catch {
          throw new UsageError(`unknown time zone "${o.timezone}"`);
        }
        const languages = String(o.languages).split(',').map((s) => s.trim()).filter(Boolean);
        const dflt = o.defaultLanguage ?? languages[0];
        if (!languages.includes(dflt)) throw new UsageError(`default language ${dflt} is not one of ${languages.join(', ')}`);
        const club = await createClub(db, { slug: o.slug, name: o.name, timezone: o.timezone, languages, defaultLanguage: dflt });
        out(`created loyalty club ${club.slug} (id ${club.id})`);
      }),
    );
  clubs.command('list').action(() =>
    withStore(async (db) => {
      for (const c of await listClubs(db)) out(`${c.id}\t${c.slug}\t${c.name}`);
    }),
  );

  const tokens = program.command('tokens').description('client tokens (X-Client-Authorization)');
  tokens
    .command('create')
    .option('--club <slug>', 'a club the token acts for (repeatable)', collect, [])
    .option('--all-clubs', 'every club of the deployment')
    .option('--product <name>', 'the X-Product-Name the token is bound to')
    .option('--any-product', 'any X-Product-Name')
    .option('--permit <permit>', 'a permit (repeatable)', collect, [])
    .option('--all-permits', 'every permit the API knows')
    .option('--name <name>', 'a note for tokens list')
    .option('--json', 'print only {"token": "…"}')
    .action((o) =>
      withStore(async (db, known) => {
        if (o.allClubs && o.club.length) throw new UsageError('give either --club (repeatable) or --all-clubs, not both');
        if (!o.allClubs && o.club.length === 0) throw new UsageError('give --club SLUG (repeatable) or --all-clubs');
        if (o.anyProduct && o.product !== undefined) throw new UsageError('give either --product or --any-product, not both');
        if (!o.anyProduct && o.product === undefined) throw new UsageError('give --product NAME or --any-product');
        if (o.product !== undefined && !isValidProductName(o.product)) throw new UsageError(`invalid product name "${o.product}"`);
        if (!o.allPermits && o.permit.length === 0) throw new UsageError('give --permit P (repeatable) or --all-permits');
        if (o.allPermits && o.permit.length) throw new UsageError('give either --permit or --all-permits, not both');
        const permits: string[] = o.allPermits ? known : o.permit;
        checkPermits(permits, known);
        const clubIds: number[] = [];
        for (const slug of o.club as string[]) clubIds.push(await clubId(db, slug));
        const { id, token } = await createClientToken(db, { clubIds, allClubs: Boolean(o.allClubs), product: o.product ?? null, permits, name: o.name });
        const scope = `${o.allClubs ? 'all clubs' : (o.club as string[]).join(', ')} / ${o.product ?? 'any product'}`;
        out(o.json ? JSON.stringify({ token }) : `token ${id} for ${scope} with ${permits.length} permit(s):\n${token}`);
      }),
    );
  // Tokens of a club: those bound to it and the all-clubs ones.
  const CLUB_TOKENS = `(t.all_clubs OR EXISTS (SELECT 1 FROM client_token_clubs tc WHERE tc.client_token_id = t.id AND tc.loyalty_club_id = $1))`;
  tokens
    .command('list')
    .requiredOption('--club <slug>')
    .action((o) =>
      withStore(async (db) => {
        const { rows } = await db.query<{ id: number; product: string | null; name: string | null; token_prefix: string; permits: string[]; revoked_at: Date | null; all_clubs: boolean }>(
          `SELECT t.id, t.product, t.name, t.token_prefix, t.permits, t.revoked_at, t.all_clubs FROM client_tokens t WHERE ${CLUB_TOKENS} ORDER BY t.id`,
          [await clubId(db, o.club)],
        );
        for (const t of rows) {
          out(`${t.id}\t${t.token_prefix}…\t${t.product ?? '(any product)'}\t${t.revoked_at ? 'revoked' : 'active'}\t${t.permits.length} permits\t${t.all_clubs ? '(all clubs) ' : ''}${t.name ?? ''}`);
        }
      }),
    );
  tokens
    .command('revoke')
    .argument('<id>', 'token id from tokens list')
    .requiredOption('--club <slug>')
    .action((id, o) =>
      withStore(async (db) => {
        if (!/^\d+$/.test(id)) throw new UsageError(`token id must be a number, got "${id}"`);
        const r = await db.query(`UPDATE client_tokens t SET revoked_at = now() WHERE t.id = $2 AND ${CLUB_TOKENS} AND t.revoked_at IS NULL`, [
          await clubId(db, o.club),
          Number(id),
        ]);
        if (r.rowCount !== 1) throw new UsageError(`no active token ${id} in ${o.club}`);
        out(`revoked token ${id}`);
      }),
    );

  program
    .command('roles')
    .description('roles for user tokens')
    .command('create')
    .requiredOption('--club <slug>')
    .requiredOption('--name <name>')
    .option('--permit <permit>', 'a permit (repeatable)', collect, [])
    .option('--all-permits')
    .action((o) =>
      withStore(async (db, known) => {
        const permits: string[] = o.allPermits ? known : o.permit;
        checkPermits(permits, known);
        await db.query(
          `INSERT INTO roles (loyalty_club_id, name, permits) VALUES ($1, $2, $3)
           ON CONFLICT (loyalty_club_id, name) DO UPDATE SET permits = EXCLUDED.permits`,
          [await clubId(db, o.club), o.name, permits],
        );
        out(`role ${o.name} has ${permits.length} permit(s)`);
      }),
    );

  program
    .command('users')
    .description('back-office users (Authorization: Bearer)')
    .command('create')
    .requiredOption('--club <slug>')
    .option('--email <email>')
    .option('--first-name <name>')
    .option('--last-name <name>')
    .option('--role <role>', 'a role name (repeatable)', collect, [])
    .option('--json', 'print only {"id": …, "token": …}')
    .action((o) =>
      withStore(async (db) => {
        const id = await clubId(db, o.club);
        const { rows } = await db.query<{ name: string }>(`SELECT name FROM roles WHERE loyalty_club_id = $1 AND name = ANY ($2)`, [id, o.role]);
        const missingRoles = o.role.filter((r: string) => !rows.some((x) => x.name === r));
        if (missingRoles.length) throw new UsageError(`unknown role(s) in ${o.club}: ${missingRoles.join(', ')} (create with: hei roles create)`);
        const user = await createUserWithToken(db, { clubId: id, email: o.email, firstName: o.firstName, lastName: o.lastName, roles: o.role });
        out(o.json ? JSON.stringify(user) : `user ${user.id}\nbearer token: ${user.token}`);
      }),
    );
}
