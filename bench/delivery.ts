// `npm run bench -- delivery`: the delivery engine at scale, on PostgreSQL (DATABASE_URL, default
// a local hei_bench_delivery database, created when missing).
//   1. preparing a marketing sending to a 1,000,000-member audience (3 conditions, consent
//      filtering, channel choice) next to a bare INSERT … SELECT of the same rows, same run;
//   2. transmitting 1,000,000 dispatches to the null transport (engine overhead only), with the
//      process RSS at 100k and at 1M.
// BENCH_MEMBERS=20000 for a quick run.
import { Registry } from 'prom-client';
import { benchDatabase, fmt, table } from './common.ts';
import type { Database } from '../src/db/connection.ts';
import { createClub, findClubBySlug } from '../src/platform/clubs.ts';
import { loadConfig } from '../src/platform/config.ts';
import { compileAudience } from '../src/members/audiences.ts';
import { DeliveryEngine } from '../src/delivery/index.ts';
import { createDeliveryMetrics } from '../src/delivery/metrics.ts';
import { prepareSending } from '../src/delivery/prepare.ts';
import { NullTransport } from '../src/transports/null.ts';

const AUDIENCE = Number(process.env.BENCH_MEMBERS ?? 1_000_000);
const OUTSIDE = Math.round(AUDIENCE / 10); // members the conditions leave out
const SLUG = `bench-delivery-${AUDIENCE}`;
const PARALLEL = Number(process.env.BENCH_PREPARE_PARALLEL ?? 2);

const SCHEMA = {
  identifiers: ['email', 'msisdn'],
  consents: { sms_marketing: {}, email_marketing: {}, push_marketing: {} },
  properties: {
    email: { type: 'string', format: 'email' },
    msisdn: { type: 'string', format: 'msisdn' },
    first_name: { type: 'string' },
    city: { type: 'string' },
  },
};

// Three conditions that select exactly AUDIENCE of the AUDIENCE + OUTSIDE members.
const CONDITIONS = [
  { condition_group: 'member_properties', field: 'city', operator: 'any', value: ['Oslo', 'Bergen', 'Trondheim'] },
  { condition_group: 'member_properties', field: 'first_name', operator: 'exists' },
  { condition_group: 'member', field: 'created_at', operator: 'gte', value: '2020-01-01T00:00:00Z' },
];

const h = (k: number) => `(abs(hashint8(i * 97 + ${k})) % 1000)`;
const GENERATE = `
INSERT INTO members (loyalty_club_id, properties, consents, sms_status, email_status, push_status, created_at)
SELECT $1,
  jsonb_build_object(
    'email', 'member' || i || '@example.com',
    'msisdn', (4790000000 + i)::text,
    'first_name', (ARRAY['Anna','Ola','Kari','Per','Ingrid','Lars'])[1 + ${h(2)} % 6],
    'city', CASE WHEN i <= $2 THEN (ARRAY['Oslo','Bergen','Trondheim'])[1 + ${h(6)} % 3] ELSE 'Tromsø' END),
  jsonb_strip_nulls(jsonb_build_object(
    'sms_marketing', CASE WHEN ${h(8)} < 800 THEN jsonb_build_object('status', ${h(8)} < 650) END,
    'email_marketing', CASE WHEN ${h(9)} < 700 THEN jsonb_build_object('status', ${h(9)} < 500) END)),
  CASE WHEN ${h(11)} < 900 THEN 'enabled' WHEN ${h(11)} < 950 THEN 'verified' ELSE 'disabled' END,
  CASE WHEN ${h(12)} < 970 THEN 'enabled' ELSE 'hard_bounced' END,
  'enabled',
  timestamptz '2021-01-01 00:00:00+00' + (abs(hashint8(i * 97 + 17)) % 126144000) * interval '1 second'
FROM generate_series(1, $2::int + $3::int) AS i`;

const seconds = (ms: number) => `${fmt(ms / 1000, 2)} s`;
const rssMb = () => process.memoryUsage().rss / 1024 / 1024;

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

async function ensureClub(db: Database): Promise<number> {
  const existing = await findClubBySlug(db, SLUG);
  if (existing) {
    const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM members WHERE loyalty_club_id = $1', [existing.id]);
    if (rows[0].n === AUDIENCE + OUTSIDE) return existing.id;
    await db.query('DELETE FROM loyalty_clubs WHERE id = $1', [existing.id]);
  }
  const club = await createClub(db, { slug: SLUG, name: 'Delivery bench mall' });
  await db.query('UPDATE loyalty_clubs SET member_schema = $2::jsonb WHERE id = $1', [club.id, JSON.stringify(SCHEMA)]);
  process.stdout.write(`generating ${fmt(AUDIENCE + OUTSIDE)} members …\n`);
  const { ms } = await timed(() => db.query(GENERATE, [club.id, AUDIENCE, OUTSIDE]));
  process.stdout.write(`  generated in ${seconds(ms)}\n`);
  await db.exec('VACUUM ANALYZE members');
  return club.id;
}

/** A message with sms + e-mail channels and one sending in `preparing`, as the scheduler leaves it. */
async function newSending(db: Database, clubId: number, marketing: boolean, conditions: unknown[] = CONDITIONS): Promise<number> {
  const { rows: m } = await db.query<{ id: number }>(
    `INSERT INTO messages (loyalty_club_id, service, name, marketing, shorten_urls) VALUES ($1, $2, 'bench', $3, true) RETURNING id`,
    [clubId, marketing ? 'campaigns' : 'generic', marketing],
  );
  const channels = [
    ['sms', 'plain', { body: 'Hei {{first_name}}, 20% off in {{city}} this weekend' }],
    ['email', 'email', { subject: 'Hei {{first_name}}', body: '<p>Hei {{first_name}}, 20% off in {{city}} this weekend</p>' }],
  ] as const;
  for (const [i, [type, ttype, content]] of channels.entries()) {
    const { rows: t } = await db.query<{ id: number }>(`INSERT INTO message_templates (loyalty_club_id, type, content) VALUES ($1, $2, $3) RETURNING id`, [clubId, ttype, content]);
    await db.query(
      `INSERT INTO message_channels (message_id, position, type, template_id, sender_type, sender_value, from_email, from_name)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [m[0].id, i, type, t[0].id, type === 'sms' ? 'alphanumeric' : null, type === 'sms' ? 'BenchMall' : null, type === 'email' ? 'news@bench.example' : null, type === 'email' ? 'Bench' : null],
    );
  }
  const { rows: s } = await db.query<{ id: number }>(
    `INSERT INTO sendings (loyalty_club_id, message_id, status, schedule, scheduled_at, preparing_started_at, audience_type, audience_conditions)
     VALUES ($1, $2, 'preparing', '{"type":"immediate"}', now(), now(), 'inline', $3) RETURNING id`,
    [clubId, m[0].id, JSON.stringify(conditions)],
  );
  return s[0].id;
}

export async function main(): Promise<void> {
  const { db, url } = await benchDatabase('hei_bench_delivery');
  try {
    process.stdout.write(`delivery bench on ${url.replace(/\/\/[^@]*@/, '//')}: audience ${fmt(AUDIENCE)} of ${fmt(AUDIENCE + OUTSIDE)} members\n`);
    const clubId = await ensureClub(db);
    // A clean queue: this database is the benchmark's own.
    await db.exec('TRUNCATE dispatches');
    await db.query('DELETE FROM messages WHERE loyalty_club_id = $1', [clubId]);
    const clock = () => new Date();

    // 1a. Bare INSERT … SELECT of the same audience rows: no channel choice, no consent.
    const bareSending = await newSending(db, clubId, true);
    const compiled = compileAudience(CONDITIONS, SCHEMA, { firstParam: 3 });
    const bare = await timed(() =>
      db.query(
        `INSERT INTO dispatches (loyalty_club_id, sending_id, recipient_key, status, channel, member_id, msisdn)
         SELECT $1, $2, 'member:' || m.id, 'pending', 'sms', m.id, m.msisdn
           FROM members m WHERE m.loyalty_club_id = $1 AND (${compiled.sql})`,
        [clubId, bareSending, ...compiled.params],
      ),
    );
    if (bare.value.rowCount !== AUDIENCE) throw new Error(`bare insert selected ${bare.value.rowCount}, expected ${AUDIENCE}`);
    await db.exec('TRUNCATE dispatches');
    await db.exec('CHECKPOINT');

    // 1b. The engine's preparation of a marketing sending to the same audience.
    const marketing = await newSending(db, clubId, true);
    const prep = await timed(() => prepareSending(db, marketing, clock, { parallel: PARALLEL }));
    const p = prep.value;
    if (p.status !== 'prepared' || p.membersCount !== AUDIENCE) throw new Error(`unexpected preparation ${JSON.stringify(p)}`);
    const { rows: split } = await db.query<{ channel: string | null; n: number }>(
      `SELECT channel, count(*)::int AS n FROM dispatches WHERE sending_id = $1 GROUP BY channel ORDER BY channel`,
      [marketing],
    );

    process.stdout.write(`\npreparation (set-based, audience in chunks of 100,000 members, ${PARALLEL} at a time)\n`);
    table([
      { step: 'bare INSERT … SELECT of the audience rows', seconds: fmt(bare.ms / 1000, 2), rows: fmt(AUDIENCE), ratio: '1.00×' },
      {
        step: 'engine: audience + consent + channel choice',
        seconds: fmt(prep.ms / 1000, 2),
        rows: fmt(p.dispatchesCount! + p.skippedCount!),
        ratio: `${fmt(prep.ms / bare.ms, 2)}×`,
      },
    ]);
    process.stdout.write(`  dispatches: ${split.map((r) => `${r.channel ?? 'skipped'} ${fmt(r.n)}`).join(', ')}\n`);
    process.stdout.write(`  target ≤ 10 s: ${prep.ms <= 10_000 ? 'met' : 'NOT met'}; ≤ 2× bare: ${prep.ms <= 2 * bare.ms ? 'met' : 'NOT met'}\n`);

    // 2. Transmission of 1M dispatches to the null transport.
    await db.exec('TRUNCATE dispatches');
    // Every member of the club (no conditions), non-marketing: a few more than AUDIENCE dispatches.
    const generic = await newSending(db, clubId, false, []);
    const prep2 = await timed(() => prepareSending(db, generic, clock, { parallel: PARALLEL }));
    const TOTAL = prep2.value.dispatchesCount!;
    if (TOTAL < AUDIENCE) throw new Error(`expected ≥ ${AUDIENCE} dispatches, got ${JSON.stringify(prep2.value)}`);
    await db.exec('ANALYZE dispatches');
    const sink = new NullTransport();
    const engine = new DeliveryEngine({
      db,
      config: loadConfig({}),
      metrics: createDeliveryMetrics(new Registry()),
      log: { error: (o, m) => console.error(m, o), warn: () => {}, info: () => {} },
      settings: {
        clubIds: [clubId],
        batchSize: Number(process.env.BENCH_BATCH ?? 2000),
        concurrency: Number(process.env.BENCH_CONCURRENCY ?? 3),
      },
      resolver: { resolveTransport: async () => sink, close: async () => {} },
    });
    process.stdout.write(`\ntransmission of ${fmt(TOTAL)} dispatches to the null transport (batch ${engine.settings.batchSize}, ${engine.settings.concurrency} concurrent)\n`);
    const rss0 = rssMb();
    let rss100k: number | null = null;
    let at100k = 0;
    const t0 = performance.now();
    for (;;) {
      const busy = await engine.transmit();
      if (rss100k === null && sink.sent >= 100_000) {
        rss100k = rssMb();
        at100k = performance.now() - t0;
      }
      if (!busy) {
        const { rows } = await db.query<{ status: string }>('SELECT status FROM sendings WHERE id = $1', [generic]);
        if (rows[0].status === 'transmitted') break;
      }
    }
    const ms = performance.now() - t0;
    const rssEnd = rssMb();
    const { rows: sent } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM dispatches WHERE sending_id = $1 AND status = 'sent'`, [generic]);
    if (sent[0].n !== TOTAL || sink.sent !== TOTAL) throw new Error(`sent ${sent[0].n} recorded / ${sink.sent} handed over, expected ${TOTAL}`);
    table([
      { measure: 'dispatches sent (recorded)', value: fmt(sent[0].n) },
      { measure: 'elapsed', value: seconds(ms) },
      { measure: 'dispatches / s', value: fmt(TOTAL / (ms / 1000)) },
      { measure: 'RSS at start (MB)', value: fmt(rss0, 1) },
      { measure: `RSS at 100k (MB, ${seconds(at100k)})`, value: fmt(rss100k ?? 0, 1) },
      { measure: `RSS at the end, ${fmt(TOTAL)} (MB)`, value: fmt(rssEnd, 1) },
      { measure: 'RSS end / 100k', value: `${fmt(rssEnd / (rss100k ?? rssEnd), 2)}×` },
    ]);
    const rate = TOTAL / (ms / 1000);
    process.stdout.write(`  target ≥ 20,000 dispatches/s: ${rate >= 20_000 ? 'met' : 'NOT met'}; RSS flat ≤ 1.2×: ${rssEnd <= 1.2 * (rss100k ?? rssEnd) ? 'met' : 'NOT met'}\n`);
    process.stdout.write(`  (preparing this non-marketing sending took ${seconds(prep2.ms)})\n`);
    await engine.close();
  } finally {
    await db.close();
  }
}
