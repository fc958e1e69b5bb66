// `npm run bench -- members [--members=N] [--concurrency=C]`: imports N (default 1,000,000)
// generated members through the CLI code path (NDJSON file → bulks of 1000 → validation →
// set-based INSERT), and times a bare COPY of the same rows into the same table in the same run.
// Needs PostgreSQL: DATABASE_URL, else postgres://postgres@127.0.0.1:5432/hei_bench (created).
// Leaves the imported members in club `bench-members` (the audiences benchmark counts them).
import { spawnSync } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { benchDatabase, fmt, table } from './common.ts';
import { createClub } from '../src/platform/clubs.ts';
import { demoMemberSchema, saveMemberSchema } from '../src/members/schema.ts';
import { importMembersFile } from '../src/members/import-file.ts';
import type { Database } from '../src/db/connection.ts';

const FIRST = ['Ola', 'Kari', 'Emma', 'Lars', 'Sofie', 'Nora', 'Jakob', 'Ingrid', 'Emil', 'Maja', 'Henrik', 'Sara'];
const LAST = ['Nordmann', 'Hansen', 'Johansen', 'Olsen', 'Larsen', 'Andersen', 'Pedersen', 'Nilsen', 'Berg', 'Lie'];
const INTERESTS = ['fashion', 'sportswear', 'food_and_drinks', 'kids', 'electronics', 'beauty', 'home_and_interior', 'bikes_and_cars'];
const GENDERS = ['man', 'woman', 'other'];
const CONSENT_TIME = '2026-01-01T00:00:00.000Z';

/** `--name=N` (bench/run.ts takes every bare word for a benchmark name). */
function arg(args: string[], name: string, dflt: number): number {
  const given = args.find((a) => a.startsWith(`--${name}=`));
  const value = given ? Number(given.slice(name.length + 3)) : dflt;
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
  return value;
}

/** Deterministic pseudo-random members, already in their stored (normalised) form. */
function member(i: number) {
  const r = (k: number) => Math.imul(i + 1, 2654435761 + k * 40503) >>> 0;
  const properties = {
    email: `member${i}@bench.example.com`,
    msisdn: String(4790000000 + i),
    first_name: FIRST[r(1) % FIRST.length],
    last_name: LAST[r(2) % LAST.length],
    birthday: `${1950 + (r(3) % 55)}-${String(1 + (r(4) % 12)).padStart(2, '0')}-${String(1 + (r(5) % 28)).padStart(2, '0')}`,
    gender: GENDERS[r(6) % 3],
    language: r(7) % 3 === 0 ? 'en' : 'no',
    interests: INTERESTS.filter((_, k) => (r(8 + k) & 7) === 0),
  };
  const consents = {
    sms_marketing: { status: r(20) % 2 === 0, updated_at: CONSENT_TIME },
    email_marketing: { status: r(21) % 3 !== 0, updated_at: CONSENT_TIME },
    push_marketing: { status: r(22) % 4 === 0, updated_at: CONSENT_TIME },
  };
  return { properties, consents };
}

const csv = (s: string) => `"${s.replace(/"/g, '""')}"`;

async function writeFiles(dir: string, n: number, copyClubId: number, importId: string) {
  const ndjson = join(dir, `members-${n}.ndjson`);
  const copy = join(dir, `members-${n}.csv`);
  const a = createWriteStream(ndjson);
  const b = createWriteStream(copy);
  for (let i = 0; i < n; i++) {
    const m = member(i);
    a.write(JSON.stringify(m) + '\n');
    b.write(`${copyClubId},${csv(JSON.stringify(m.properties))},${csv(JSON.stringify(m.consents))},enabled,enabled,enabled,import,${importId}\n`);
    // Checked after each wait: a stream may drain while we wait for the other.
    if (a.writableNeedDrain) await once(a, 'drain');
    if (b.writableNeedDrain) await once(b, 'drain');
  }
  a.end();
  b.end();
  await Promise.all([once(a, 'finish'), once(b, 'finish')]);
  return { ndjson, copy };
}

async function freshClub(db: Database, slug: string) {
  await db.query('DELETE FROM loyalty_clubs WHERE slug = $1', [slug]);
  const club = await createClub(db, { slug, name: slug, languages: ['en', 'no'] });
  await saveMemberSchema(db, club.id, demoMemberSchema(['en', 'no'], 'en'));
  return club;
}

export async function main(args: string[]): Promise<void> {
  const n = arg(args, 'members', 1_000_000);
  const concurrency = arg(args, 'concurrency', 3);
  const { db, url } = await benchDatabase('hei_bench');
  process.stdout.write(`members import benchmark: ${fmt(n)} members on ${url.replace(/\/\/[^@]*@/, '//')}\n`);
  const dir = join(process.cwd(), '.bench');
  mkdirSync(dir, { recursive: true });

  const copyClub = await freshClub(db, 'bench-members-copy');
  const importClub = await freshClub(db, 'bench-members');
  await db.query('VACUUM ANALYZE members');
  let t = Date.now();
  const files = await writeFiles(dir, n, copyClub.id, 'bench');
  process.stdout.write(`generated ${files.ndjson} and ${files.copy} in ${((Date.now() - t) / 1000).toFixed(1)} s\n`);

  // 1. Bare COPY of the same rows (psql \copy streams the file from the client).
  t = Date.now();
  const copied = spawnSync('psql', [url, '-v', 'ON_ERROR_STOP=1', '-qc',
    `\\copy members (loyalty_club_id, properties, consents, sms_status, email_status, push_status, optin_channel, optin_subchannel) FROM '${files.copy}' WITH (FORMAT csv)`], { encoding: 'utf8' });
  const copySeconds = (Date.now() - t) / 1000;
  if (copied.status !== 0) throw new Error(`COPY failed: ${copied.stderr}`);
  const copiedRows = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM members WHERE loyalty_club_id = $1', [copyClub.id])).rows[0].n;
  // Same starting point for the import: the copied rows go, the table is vacuumed.
  await db.query('DELETE FROM loyalty_clubs WHERE id = $1', [copyClub.id]);
  await db.query('VACUUM ANALYZE members');

  // 2. The CLI code path.
  t = Date.now();
  let lastPrint = 0;
  const summary = await importMembersFile(db, importClub.id, files.ndjson, {
    concurrency,
    importId: 'bench',
    onProgress: (p) => {
      if (Date.now() - lastPrint > 10_000) {
        lastPrint = Date.now();
        process.stdout.write(`  … ${fmt(p.created)} imported, ${fmt(p.created / ((Date.now() - t) / 1000))}/s\n`);
      }
    },
  });
  const importSeconds = (Date.now() - t) / 1000;
  const imported = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM members WHERE loyalty_club_id = $1', [importClub.id])).rows[0].n;
  await db.query('ANALYZE members');

  const copyRate = copiedRows / copySeconds;
  const importRate = imported / importSeconds;
  table([
    { path: 'COPY (psql \\copy)', members: fmt(copiedRows), seconds: copySeconds.toFixed(1), 'members/s': fmt(copyRate) },
    { path: `hei import (CLI path, ${concurrency} bulks at a time)`, members: fmt(imported), seconds: importSeconds.toFixed(1), 'members/s': fmt(importRate) },
  ]);
  process.stdout.write(`ratio import / COPY: ${(importRate / copyRate).toFixed(2)}× (target ≥ 0.25×); errors ${summary.errors}, failed bulks ${summary.failedBulks.length}\n`);
  await db.close();
}
