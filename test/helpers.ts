// Test harness: a real server on a random port over the database under test — PGlite in memory by
// default, the PostgreSQL server when DATABASE_URL is set (`.ci/run` runs the suite both ways).
import { after } from 'node:test';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildApp } from '../src/app.ts';
import { openPglite, openPostgres, type Database } from '../src/db/connection.ts';
import { migrate } from '../src/db/migrate.ts';
import { loadConfig, type Config } from '../src/platform/config.ts';
import { createClub } from '../src/platform/clubs.ts';
import type { LoyaltyClub } from '../src/platform/context.ts';
import { allPermits } from '../src/platform/permits.ts';
import { createClientToken, createUserWithToken } from '../src/platform/tokens.ts';
import type { Api } from '../src/platform/services.ts';
import { DEMO_MESSAGING_SETTINGS } from '../src/seed.ts';

export const PRODUCT = 'test-suite';

export interface TestResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export interface RequestOptions {
  body?: unknown;
  /** Raw body text, sent as is (for malformed JSON). */
  raw?: string;
  headers?: Record<string, string | undefined>;
  token?: string | null;
  slug?: string | null;
}

export interface TestClub {
  club: LoyaltyClub;
  /** A client token holding every permit. */
  token: string;
  /** Requests with this club's headers and token. */
  request<T = any>(method: string, path: string, opts?: RequestOptions): Promise<TestResponse<T>>;
  tokenWith(permits: string[], product?: string): Promise<string>;
  userToken(permits: string[]): Promise<string>;
}

export interface TestContext {
  app: Api;
  db: Database;
  baseUrl: string;
  permits: string[];
  /** A new loyalty club with a unique slug and an all-permits token. */
  newClub(opts?: { messagingSettings?: object }): Promise<TestClub>;
  fetch<T = any>(method: string, path: string, opts?: RequestOptions & { slug?: string | null }): Promise<TestResponse<T>>;
}

export const usingPostgres = () => Boolean(process.env.DATABASE_URL);

export async function openTestDatabase(): Promise<Database> {
  const db = process.env.DATABASE_URL ? openPostgres(process.env.DATABASE_URL) : await openPglite();
  await migrate(db);
  return db;
}

export interface StartOptions {
  config?: Partial<Config>;
  /** Test-only routes, registered before the server listens (platform mechanism tests). */
  routes?: (app: Api) => void;
  logger?: object | false;
  /** Wraps the database the app sees (fault injection: `withFaults`). The harness keeps the raw one. */
  wrapDb?: (db: Database) => Database;
}

export async function startTestApp(opts: StartOptions = {}): Promise<TestContext> {
  const db = await openTestDatabase();
  const config = { ...loadConfig({}), tokenCacheSeconds: 0, ...opts.config };
  const app = await buildApp({ db: opts.wrapDb ? opts.wrapDb(db) : db, config, logger: opts.logger ?? false });
  opts.routes?.(app);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  const baseUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  const permits = allPermits(app);
  after(async () => {
    await app.close();
    await db.close();
  });

  const doFetch = async <T>(method: string, path: string, opts: RequestOptions = {}): Promise<TestResponse<T>> => {
    const headers: Record<string, string> = { 'X-User-Agent': 'Hei test suite', 'X-Product-Name': PRODUCT };
    if (opts.slug) headers['X-Loyalty-Club-Slug'] = opts.slug;
    if (opts.token) headers['X-Client-Authorization'] = opts.token;
    let body: string | undefined;
    if (opts.raw !== undefined) body = opts.raw;
    else if (opts.body !== undefined) body = JSON.stringify(opts.body);
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    for (const [k, v] of Object.entries(opts.headers ?? {})) {
      if (v === undefined) delete headers[Object.keys(headers).find((h) => h.toLowerCase() === k.toLowerCase()) ?? k];
      else headers[k] = v;
    }
    const res = await fetch(baseUrl + path, { method, headers, body });
    const text = await res.text();
    let parsed: any = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: keep the text
    }
    // Every 422 leaf of the suite is checked for its full shape here; the body the test sees keeps
    // `error` and non-empty `options` only, so that tests state the keys they are about. `text`
    // keeps the answer as sent (test/platform/errors.test.ts asserts values and messages there).
    if (res.status === 422 && parsed && typeof parsed === 'object' && parsed.details) parsed = { ...parsed, details: briefLeaves(parsed.details) };
    return { status: res.status, headers: res.headers, body: parsed as T, text };
  };

  const newClub = async (opts: { messagingSettings?: object } = {}): Promise<TestClub> => {
    const slug = `club-${randomBytes(5).toString('hex')}`;
    const club = await createClub(db, { slug, name: `Club ${slug}`, languages: ['en', 'no'], messagingSettings: opts.messagingSettings ?? DEMO_MESSAGING_SETTINGS });
    const { token } = await createClientToken(db, { clubId: club.id, product: PRODUCT, permits });
    return {
      club,
      token,
      request: (method, path, o = {}) => doFetch(method, path, { slug, token, ...o }),
      tokenWith: async (p, product = PRODUCT) => (await createClientToken(db, { clubId: club.id, product, permits: p })).token,
      userToken: async (p) => {
        const role = `role-${randomBytes(4).toString('hex')}`;
        await db.query(`INSERT INTO roles (loyalty_club_id, name, permits) VALUES ($1, $2, $3)`, [club.id, role, p]);
        return (await createUserWithToken(db, { clubId: club.id, roles: [role], firstName: 'Test', lastName: role })).token;
      },
    };
  };

  return { app, db, baseUrl, permits, newClub, fetch: doFetch };
}

/** Checks that every leaf is `{error, options, value, message}` and keeps `error` (+ non-empty `options`). */
export function briefLeaves(tree: Record<string, any>): Record<string, any> {
  const out: Record<string, any> = {};
  for (const [key, node] of Object.entries(tree)) {
    const value = Array.isArray(node)
      ? node.map((leaf) => {
          // Key order is not part of JSON's meaning (a jsonb column sorts keys): compare the set.
          const keys = Object.keys(leaf).sort().join(',');
          if (keys !== 'error,message,options,value' || typeof leaf.message !== 'string' || typeof leaf.options !== 'object') {
            throw new Error(`422 leaf at ${key} is not {error, options, value, message}: ${JSON.stringify(leaf)}`);
          }
          return Object.keys(leaf.options).length ? { error: leaf.error, options: leaf.options } : { error: leaf.error };
        })
      : briefLeaves(node);
    // `__proto__` may be a key of the tree (hostile input): keep it a data key.
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/**
 * A self-signed certificate for CN=localhost and 127.0.0.1, made with openssl in `dir`; null (with
 * the reason) when openssl is missing.
 */
export function selfSignedCertificate(dir: string): { keyFile: string; certFile: string; key: string; cert: string } | { skip: string } {
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  // The subjectAltName also names 127.0.0.1, where test peers listen (with a subjectAltName the CN is not checked).
  const openssl = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', keyFile, '-out', certFile],
    { encoding: 'utf8' },
  );
  if (openssl.error) return { skip: `openssl not found (${openssl.error.message}): cannot make a test certificate` };
  if (openssl.status !== 0) throw new Error(`openssl failed: ${openssl.stderr}`);
  return { keyFile, certFile, key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8') };
}
