// `npm run bench -- audiences`: an audience count over 1,000,000 generated members with three
// conditions including a consent filter (target < 1 s), next to a hand-written SQL count of the
// same predicate in the same run. PostgreSQL only (DATABASE_URL, default a local hei_bench_aud).
import { benchDatabase, fmt, table } from './common.ts';
import type { Database } from '../src/db/connection.ts';
import { createClub, findClubBySlug } from '../src/platform/clubs.ts';
import { compileAudience, countAudience } from '../src/members/audiences.ts';

const MEMBERS = Number(process.env.BENCH_MEMBERS ?? 1_000_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const SLUG = `bench-audiences-${MEMBERS}`;

const SCHEMA = {
  identifiers: ['email', 'msisdn'],
  consents: { sms_marketing: {}, email_marketing: {}, push_marketing: {} },
  properties: {
    email: { type: 'string', format: 'email' },
    msisdn: { type: 'string', format: 'msisdn' },
    first_name: { type: 'string' },
    last_name: { type: 'string' },
    birthday: { type: 'string', format: 'date' },
    gender: { type: 'string', enum: ['man', 'woman', 'other'] },
    city: { type: 'string' },
    language: { type: 'string' },
    interests: { type: 'array', items: { type: 'string', enum: ['bikes_and_cars', 'sportwear', 'fashion', 'food', 'kids', 'electronics'] } },
  },
};

const CONDITIONS = [
  { condition_group: 'member_properties', field: 'city', operator: 'match', value: 'Oslo' },
  { condition_group: 'consents', field: 'sms_marketing', operator: 'match', value: true },
  { condition_group: 'member_properties', field: 'birthday', operator: 'between', value: ['1980-01-01', '1999-12-31'] },
];

// What someone would write by hand for the same three conditions.
const BASELINE = `SELECT count(*)::int AS n FROM members
  WHERE loyalty_club_id = $1
    AND properties ->> 'city' = 'Oslo'
    AND (consents -> 'sms_marketing' ->> 'status')::boolean
    AND properties ->> 'birthday' BETWEEN '1980-01-01' AND '1999-12-31'`;

/** A deterministic pseudo-random 0..999 per member and feature, so every run generates the same data. */
const h = (k: number) => `(abs(hashint8(i * 97 + ${k})) % 1000)`;
const pick = (values: string[], k: number) => `(ARRAY[${values.map((v) => `'${v}'`).join(',')}])[1 + ${h(k)} % ${values.length}]`;
const consent = (k: number, givenPerMille: number, recordedPerMille: number) =>
  `CASE WHEN ${h(k)} < ${recordedPerMille} THEN jsonb_build_object('status', ${h(k)} < ${givenPerMille}, 'updated_at', '2024-03-01T12:00:00.000Z') END`;

const CITIES = ['Oslo', 'Oslo', 'Oslo', 'Oslo', 'Oslo', 'Bergen', 'Bergen', 'Bergen', 'Trondheim', 'Trondheim', 'Stavanger', 'Stavanger',
  'Drammen', 'Fredrikstad', 'Kristiansand', 'Sandnes', 'Tromsø', 'Sarpsborg', 'Skien', 'Ålesund'];
const INTERESTS = ['bikes_and_cars', 'sportwear', 'fashion', 'food', 'kids', 'electronics'];

const GENERATE = `
INSERT INTO members (loyalty_club_id, properties, consents, sms_status, email_status, push_status, has_push_token,
                     subunit_ids, favorite_stores, optin_channel, created_at, updated_at)
SELECT $1,
  jsonb_strip_nulls(jsonb_build_object(
    'email', 'member' || i || '@example.com',
    'msisdn', CASE WHEN ${h(1)} < 900 THEN (4790000000 + i)::text END,
    'first_name', ${pick(['Anna', 'Ola', 'Kari', 'Per', 'Ingrid', 'Lars', 'Sofie', 'Jonas', 'Emma', 'Henrik', 'Nora', 'Jakob'], 2)},
    'last_name', ${pick(['Hansen', 'Johansen', 'Olsen', 'Larsen', 'Andersen', 'Pedersen', 'Nilsen', 'Kristiansen', 'Jensen', 'Karlsen'], 3)},
    'birthday', to_char(date '1945-01-01' + (abs(hashint8(i * 97 + 4)) % 22000)::int, 'YYYY-MM-DD'),
    'gender', ${pick(['man', 'woman', 'woman', 'man', 'other'], 5)},
    'city', ${pick(CITIES, 6)},
    'language', ${pick(['no', 'no', 'no', 'en'], 7)},
    'interests', CASE WHEN i % 6 = (i / 6) % 6 THEN jsonb_build_array((ARRAY[${INTERESTS.map((v) => `'${v}'`).join(',')}])[1 + i % 6])
                 ELSE jsonb_build_array((ARRAY[${INTERESTS.map((v) => `'${v}'`).join(',')}])[1 + i % 6],
                                        (ARRAY[${INTERESTS.map((v) => `'${v}'`).join(',')}])[1 + (i / 6) % 6]) END
  )),
  jsonb_strip_nulls(jsonb_build_object(
    'sms_marketing', ${consent(8, 600, 800)},
    'email_marketing', ${consent(9, 500, 750)},
    'push_marketing', ${consent(10, 300, 500)}
  )),
  CASE WHEN ${h(11)} < 850 THEN 'enabled' WHEN ${h(11)} < 900 THEN 'verified' WHEN ${h(11)} < 970 THEN 'disabled' ELSE 'hard_bounced' END,
  CASE WHEN ${h(12)} < 920 THEN 'enabled' WHEN ${h(12)} < 960 THEN 'disabled' ELSE 'hard_bounced' END,
  CASE WHEN ${h(13)} < 800 THEN 'enabled' ELSE 'disabled' END,
  ${h(14)} < 350,
  ARRAY[1 + ${h(15)} % 3]::bigint[],
  CASE WHEN ${h(16)} < 400 THEN ARRAY[100 + ${h(16)} % 40]::bigint[] ELSE '{}'::bigint[] END,
  'import',
  timestamptz '2021-01-01 00:00:00+00' + (abs(hashint8(i * 97 + 17)) % 157680000) * interval '1 second',
  now()
FROM generate_series(1, $2::int) AS i`;

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

async function median<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  await fn(); // warm the cache and the plan
  const runs: Array<{ ms: number; value: T }> = [];
  for (let i = 0; i < RUNS; i++) runs.push(await timed(fn));
  runs.sort((a, b) => a.ms - b.ms);
  return runs[Math.floor(runs.length / 2)];
}

async function prepareClub(db: Database): Promise<{ clubId: number; generatedMs: number | null }> {
  const existing = await findClubBySlug(db, SLUG);
  if (existing) {
    const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM members WHERE loyalty_club_id = $1', [existing.id]);
    if (rows[0].n === MEMBERS) return { clubId: existing.id, generatedMs: null };
    await db.query('DELETE FROM loyalty_clubs WHERE id = $1', [existing.id]);
  }
  const club = await createClub(db, { slug: SLUG, name: 'Audience bench mall' });
  await db.query('UPDATE loyalty_clubs SET member_schema = $2::jsonb WHERE id = $1', [club.id, JSON.stringify(SCHEMA)]);
  process.stdout.write(`generating ${fmt(MEMBERS)} members …\n`);
  const { ms } = await timed(() => db.query(GENERATE, [club.id, MEMBERS]));
  // A settled table, as in production: statistics and visibility map up to date.
  await db.exec('VACUUM ANALYZE members');
  return { clubId: club.id, generatedMs: ms };
}

export async function main(): Promise<void> {
  const { db, url } = await benchDatabase('hei_bench_aud');
  try {
    process.stdout.write(`audiences bench on ${url.replace(/\/\/[^@]*@/, '//')}\n`);
    const { clubId, generatedMs } = await prepareClub(db);
    process.stdout.write(generatedMs === null
      ? `reusing ${fmt(MEMBERS)} generated members of club ${SLUG}\n`
      : `generated ${fmt(MEMBERS)} members in ${fmt(generatedMs / 1000, 1)} s (one INSERT … SELECT generate_series)\n`);

    const compiled = compileAudience(CONDITIONS, SCHEMA, { firstParam: 2 });
    const ours = await median(() => countAudience(db, clubId, CONDITIONS, SCHEMA, { sampleSize: 0 }));
    const reach = await median(() => countAudience(db, clubId, CONDITIONS, SCHEMA, { sampleSize: 0, channel: 'sms', marketing: true }));
    const base = await median(async () => (await db.query<{ n: number }>(BASELINE, [clubId])).rows[0].n);
    if (ours.value.members_count !== base.value) throw new Error(`counts differ: audience ${ours.value.members_count}, baseline ${base.value}`);

    const plan = await db.query<{ 'QUERY PLAN': string }>(
      `EXPLAIN SELECT count(*) FROM members m WHERE m.loyalty_club_id = $1 AND (${compiled.sql})`,
      [clubId, ...compiled.params],
    );
    table([
      { query: 'audience count (compiled, 3 conditions)', ms: fmt(ours.ms, 1), members: fmt(ours.value.members_count), 'vs baseline': `${fmt(ours.ms / base.ms, 2)}×` },
      { query: '  + reachable on sms (marketing)', ms: fmt(reach.ms, 1), members: fmt(reach.value.reachable_count ?? 0), 'vs baseline': `${fmt(reach.ms / base.ms, 2)}×` },
      { query: 'baseline: hand-written SQL', ms: fmt(base.ms, 1), members: fmt(base.value), 'vs baseline': '1.00×' },
    ]);
    process.stdout.write(`median of ${RUNS} runs after one warm-up; target < 1000 ms: ${ours.ms < 1000 ? 'met' : 'NOT met'}\n`);
    process.stdout.write(`conditions: ${JSON.stringify(CONDITIONS)}\nplan of the compiled count:\n${plan.rows.map((r) => '  ' + r['QUERY PLAN']).join('\n')}\n`);
  } finally {
    await db.close();
  }
}
