// `npm run bench -- api`: a small authenticated GET through the whole platform pipeline (headers,
// token, club, permit, rate limit, validation, pagination, metrics) against a bare Fastify route
// reading the same row from the same database, in one run. Target: ≥ 0.5× the bare throughput.
import Fastify from 'fastify';
import autocannon from 'autocannon';
import { randomBytes, randomUUID } from 'node:crypto';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/platform/config.ts';
import { createClub } from '../src/platform/clubs.ts';
import { createClientToken } from '../src/platform/tokens.ts';
import { benchDatabase, fmt, table } from './common.ts';

const DURATION = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 20);

async function load(url: string, headers: Record<string, string>) {
  const r = await autocannon({ url, headers, connections: CONNECTIONS, duration: DURATION });
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${url}: ${r.non2xx} non-2xx, ${r.errors} errors`);
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, total: r.requests.total };
}

export async function main(): Promise<void> {
  const { db, url } = await benchDatabase('hei_bench_api');
  const slug = `bench-${randomBytes(4).toString('hex')}`;
  const club = await createClub(db, { slug, name: 'Bench Mall' });
  await db.query(`INSERT INTO users (id, loyalty_club_id, first_name, last_name, roles) VALUES ($1, $2, 'Bench', 'User', '{admin}')`, [randomUUID(), club.id]);
  const { token } = await createClientToken(db, { clubId: club.id, product: 'bench', permits: ['Users:Api:Users:Index'] });

  // Request logs are info level; the benchmark runs at warn, as a busy deployment would.
  const app = await buildApp({ db, config: { ...loadConfig(), logLevel: 'warn' }, logger: { level: 'warn' } });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const appUrl = `http://127.0.0.1:${(app.server.address() as any).port}/v1/users?per_page=1`;

  const bare = Fastify();
  bare.get('/bare/users', async () => {
    const { rows } = await db.query(
      `SELECT id, first_name, last_name, roles, avatar_url FROM users WHERE loyalty_club_id = $1 ORDER BY created_at LIMIT 1`,
      [club.id],
    );
    return { users: rows };
  });
  await bare.listen({ port: 0, host: '127.0.0.1' });
  const bareUrl = `http://127.0.0.1:${(bare.server.address() as any).port}/bare/users`;

  process.stdout.write(`api benchmark on ${url.replace(/\/\/[^@]*@/, '//')}: ${CONNECTIONS} connections, ${DURATION} s each\n`);
  const headers = { 'X-User-Agent': 'bench', 'X-Product-Name': 'bench', 'X-Loyalty-Club-Slug': slug, 'X-Client-Authorization': token };
  // Warm-up of both (JIT, pool, caches), not counted.
  await load(bareUrl, {});
  await load(appUrl, headers);
  const b = await load(bareUrl, {});
  const h = await load(appUrl, headers);
  table([
    { route: 'bare Fastify + same SELECT', 'req/s': fmt(b.rps), 'p50 ms': b.p50, 'p99 ms': b.p99 },
    { route: 'Hei GET /v1/users (full pipeline)', 'req/s': fmt(h.rps), 'p50 ms': h.p50, 'p99 ms': h.p99 },
  ]);
  const ratio = h.rps / b.rps;
  process.stdout.write(`ratio: ${fmt(ratio, 2)}× the bare route (target ≥ 0.5×) — ${ratio >= 0.5 ? 'met' : 'NOT met'}\n`);
  await app.close();
  await bare.close();
  await db.close();
}
