// Members changes subscriptions (members-api §5.6): a club's webhooks, the outbox of events
// written in the transaction of each member change, and the delivery in MPC's format: per
// subscription one FIFO queue with one batch in flight, retried for up to 20 days.
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import type { Database, Queryable } from '../db/connection.ts';
import { notFound, Violations } from '../platform/errors.ts';
import { isAllowedTargetHost, isPublicAddress, publicOnlyLookup, resolvesPublicOnly } from '../platform/net-targets.ts';
import { randomToken } from '../platform/tokens.ts';
import { limitOffset, selectPage } from '../platform/pagination.ts';
import { iso } from '../platform/schema.ts';
import { batchBody, v1Event, v2Event, type EventType, type MemberChange } from './webhook-payloads.ts';

export type { MemberChange };

export type MemberAction = 'create' | 'update' | 'delete';

/** MPC's authentication header: the subscription's secret token itself. */
export const SECRET_HEADER = 'X-Secret-Token';
/** Hei's header beside it: `sha256=<hex HMAC-SHA256 of the raw body, keyed by secret_token>`. */
export const SIGNATURE_HEADER = 'X-Hei-Signature';

/** Retries stop once the oldest event of a batch would wait beyond 20 days (MPC's promise). */
export const RETRY_FOR_MS = 20 * 24 * 3600_000;
/** Events per POST at most. */
export const BATCH_SIZE = 500;
const BACKOFF_BASE_MS = 30_000;
const BACKOFF_CAP_MS = 6 * 3600_000;
const DELIVERY_TIMEOUT_MS = 10_000;
const LEASE_SECONDS = 60;

export interface WebhookSettings {
  /** Allow targets in loopback / private / link-local ranges (`WEBHOOKS_ALLOW_PRIVATE=1`). */
  allowPrivateTargets: boolean;
  /** Backoff base; tests shorten it. */
  backoffBaseMs?: number;
  /** A PEM file of certificates trusted besides the system roots (`WEBHOOKS_CA_FILE`). */
  caFile?: string;
  /** Bound of one POST, connection to last byte. */
  timeoutMs?: number;
  batchSize?: number;
  /** Batches one claim may post in a row (tests set 1 to see each run). */
  maxBatchesPerClaim?: number;
}

export function webhookSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): WebhookSettings {
  const flag = (env.WEBHOOKS_ALLOW_PRIVATE ?? '').toLowerCase();
  return {
    allowPrivateTargets: ['1', 'true', 'yes', 'on'].includes(flag),
    backoffBaseMs: Number(env.WEBHOOKS_BACKOFF_BASE_MS) || undefined,
    caFile: env.WEBHOOKS_CA_FILE || undefined,
  };
}

// ---- target address safety ----

/** A target address Hei must not call (see platform/net-targets.ts). */
export const isPrivateAddress = (address: string): boolean => !isPublicAddress(address);

/** Syntax and literal-address checks at subscription time; names are checked again on delivery. */
export function checkTargetUrl(raw: string, settings: WebhookSettings, v: Violations): void {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return void v.add(['url'], 'invalid_format', { format: 'url' });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return void v.add(['url'], 'invalid_format', { format: 'url' });
  if (url.username || url.password) return void v.add(['url'], 'invalid_format', { format: 'url' });
  if (settings.allowPrivateTargets) return;
  if (!isAllowedTargetHost(url.hostname)) v.add(['url'], 'private_address_not_allowed');
}

/** At subscription time a name must also resolve to public addresses only (delivery checks again). */
async function checkTargetResolves(raw: string, settings: WebhookSettings, v: Violations): Promise<void> {
  if (settings.allowPrivateTargets || !v.empty) return;
  if (!(await resolvesPublicOnly(new URL(raw).hostname))) v.add(['url'], 'private_address_not_allowed');
}

/** DNS lookup used for delivery: refuses names that resolve into private ranges (no rebinding). */
const guardedLookup = (settings: WebhookSettings) => publicOnlyLookup(settings.allowPrivateTargets);

// ---- subscriptions ----

export interface Subscription {
  id: number;
  url: string;
  secret_token: string;
  event_schema_version: number;
  is_sent_on_import: boolean;
  is_sent_on_update: boolean;
  is_sent_on_delete: boolean;
  is_person_id_sent: boolean;
  excluded_sources: Record<string, string[]>;
  /** Until then the secret replaced by the last rotation is still sent beside the new one. */
  previous_secret_expires_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface SubscriptionInput {
  url?: string;
  event_schema_version?: number;
  is_sent_on_import?: boolean;
  is_sent_on_update?: boolean;
  is_sent_on_delete?: boolean;
  is_person_id_sent?: boolean;
  excluded_sources?: Record<string, string[]>;
}

const SUB_COLUMNS = `id, url, secret_token, event_schema_version, is_sent_on_import, is_sent_on_update, is_sent_on_delete,
  is_person_id_sent, excluded_sources, previous_secret_expires_at, created_at, updated_at`;
/** `excluded_sources` keys are MPC's event types; `create` stays accepted for `import`. */
const EXCLUDABLE_ACTIONS = ['import', 'create', 'update', 'delete'];

const toSubscription = (r: Record<string, any>): Subscription => ({
  ...(r as Subscription),
  previous_secret_expires_at: iso(r.previous_secret_expires_at),
  created_at: iso(r.created_at)!,
  updated_at: iso(r.updated_at)!,
});

/** MPC delivers to https only; plain http is for private / loopback targets behind the switch. */
export function checkTargetScheme(raw: string, settings: WebhookSettings, v: Violations): void {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return; // reported by checkTargetUrl
  }
  if (url.protocol !== 'http:') return;
  if (!settings.allowPrivateTargets || !isLocalHost(url.hostname)) v.add(['url'], 'invalid_format', { format: 'https_url' });
}

function isLocalHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host.endsWith('.localhost') || host.endsWith('.local') || host.endsWith('.internal') || (isIP(host) !== 0 && isPrivateAddress(host));
}

function checkSubscription(input: SubscriptionInput, settings: WebhookSettings): Violations {
  const v = new Violations();
  if (input.url !== undefined) {
    checkTargetUrl(input.url, settings, v);
    if (v.empty) checkTargetScheme(input.url, settings, v);
  }
  for (const key of Object.keys(input.excluded_sources ?? {})) {
    if (!EXCLUDABLE_ACTIONS.includes(key)) v.add(['excluded_sources', key], 'inclusion', { in: EXCLUDABLE_ACTIONS });
  }
  return v;
}

async function urlTaken(db: Queryable, clubId: number, url: string, exceptId: number | null, v: Violations) {
  const { rows } = await db.query('SELECT 1 FROM members_changes_subscriptions WHERE loyalty_club_id = $1 AND url = $2 AND id IS DISTINCT FROM $3', [clubId, url, exceptId]);
  if (rows.length) v.add(['url'], 'taken');
}

export async function createSubscription(db: Queryable, clubId: number, input: SubscriptionInput & { url: string }, settings: WebhookSettings): Promise<Subscription> {
  const v = checkSubscription(input, settings);
  await checkTargetResolves(input.url, settings, v);
  await urlTaken(db, clubId, input.url, null, v);
  v.throwIfAny();
  const { rows } = await db.query(
    `INSERT INTO members_changes_subscriptions (loyalty_club_id, url, secret_token, event_schema_version, is_sent_on_import,
       is_sent_on_update, is_sent_on_delete, is_person_id_sent, excluded_sources)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ${SUB_COLUMNS}`,
    [
      clubId, input.url, randomToken(40), input.event_schema_version ?? 1, input.is_sent_on_import ?? true,
      input.is_sent_on_update ?? true, input.is_sent_on_delete ?? true, input.is_person_id_sent ?? false, input.excluded_sources ?? {},
    ],
  );
  return toSubscription(rows[0]);
}

export async function getSubscription(db: Queryable, clubId: number, id: number): Promise<Subscription> {
  const { rows } = await db.query(`SELECT ${SUB_COLUMNS} FROM members_changes_subscriptions WHERE loyalty_club_id = $1 AND id = $2`, [clubId, id]);
  if (!rows[0]) throw notFound('Members changes subscription');
  return toSubscription(rows[0]);
}

export async function listSubscriptions(db: Queryable, clubId: number, page: number, perPage: number): Promise<{ items: Subscription[]; total: number }> {
  const { rows, total } = await selectPage<any>(
    db, SUB_COLUMNS, 'FROM members_changes_subscriptions WHERE loyalty_club_id = $1', `ORDER BY id ${limitOffset({ page_no: page, per_page: perPage })}`, [clubId],
  );
  return { items: rows.map(toSubscription), total };
}

export async function updateSubscription(db: Queryable, clubId: number, id: number, input: SubscriptionInput, settings: WebhookSettings): Promise<Subscription> {
  const current = await getSubscription(db, clubId, id);
  const v = checkSubscription(input, settings);
  if (input.url !== undefined) await checkTargetResolves(input.url, settings, v);
  if (input.url !== undefined) await urlTaken(db, clubId, input.url, id, v);
  v.throwIfAny();
  const next = { ...current, ...Object.fromEntries(Object.entries(input).filter(([, val]) => val !== undefined)) };
  const { rows } = await db.query(
    `UPDATE members_changes_subscriptions SET url = $3, event_schema_version = $4, is_sent_on_import = $5, is_sent_on_update = $6,
            is_sent_on_delete = $7, is_person_id_sent = $8, excluded_sources = $9, updated_at = now()
      WHERE loyalty_club_id = $1 AND id = $2 RETURNING ${SUB_COLUMNS}`,
    [clubId, id, next.url, next.event_schema_version, next.is_sent_on_import, next.is_sent_on_update, next.is_sent_on_delete, next.is_person_id_sent, next.excluded_sources],
  );
  return toSubscription(rows[0]);
}

/**
 * A new secret; the old one is still sent beside it for `overlapSeconds`, so a receiver checking
 * either secret keeps accepting deliveries while it is reconfigured.
 */
export async function rotateSubscriptionSecret(db: Queryable, clubId: number, id: number, overlapSeconds: number): Promise<Subscription> {
  await getSubscription(db, clubId, id);
  const { rows } = await db.query(
    `UPDATE members_changes_subscriptions
        SET previous_secret_token = CASE WHEN $4::int > 0 THEN secret_token END,
            previous_secret_expires_at = CASE WHEN $4::int > 0 THEN now() + make_interval(secs => $4) END,
            secret_token = $3, updated_at = now()
      WHERE loyalty_club_id = $1 AND id = $2 RETURNING ${SUB_COLUMNS}`,
    [clubId, id, randomToken(40), overlapSeconds],
  );
  return toSubscription(rows[0]);
}

/** Deletes the subscription with its pending events and its delivery log. */
export async function deleteSubscription(db: Queryable, clubId: number, id: number): Promise<void> {
  const r = await db.query('DELETE FROM members_changes_subscriptions WHERE loyalty_club_id = $1 AND id = $2', [clubId, id]);
  if (r.rowCount !== 1) throw notFound('Members changes subscription');
}

// ---- outbox ----

const FLAG: Record<MemberAction, 'is_sent_on_import' | 'is_sent_on_update' | 'is_sent_on_delete'> = {
  create: 'is_sent_on_import',
  update: 'is_sent_on_update',
  delete: 'is_sent_on_delete',
};
const EVENT_TYPE: Record<MemberAction, EventType> = { create: 'import', update: 'update', delete: 'delete' };

/**
 * Queues one event per (subscription, change) in the caller's transaction, so an event exists
 * exactly when its change was committed; ids give each subscription's FIFO order. `source` is the
 * X-Product-Name of the writer; subscriptions that exclude it for this event type get nothing.
 */
export async function enqueueMemberEvents(tx: Queryable, clubId: number, action: MemberAction, changes: MemberChange[], source: string, occurredAt: string): Promise<number> {
  if (changes.length === 0) return 0;
  const { rows: subs } = await tx.query<{ id: number; event_schema_version: number; is_person_id_sent: boolean; excluded_sources: Record<string, string[]>; slug: string; name: string }>(
    `SELECT s.id, s.event_schema_version, s.is_person_id_sent, s.excluded_sources, c.slug, c.name
       FROM members_changes_subscriptions s JOIN loyalty_clubs c ON c.id = s.loyalty_club_id
      WHERE s.loyalty_club_id = $1 AND s.${FLAG[action]} ORDER BY s.id`,
    [clubId],
  );
  const type = EVENT_TYPE[action];
  const events: Array<{ subscription_id: number; member_id: number; version: number; payload: unknown }> = [];
  for (const s of subs) {
    const excluded = [...(s.excluded_sources[type] ?? []), ...(action === 'create' ? s.excluded_sources.create ?? [] : [])];
    if (excluded.includes(source)) continue;
    const options = { type, date: occurredAt, club: { id: clubId, slug: s.slug, name: s.name }, personIdSent: s.is_person_id_sent };
    for (const c of changes) {
      const payload = s.event_schema_version === 2 ? v2Event(c, options) : v1Event(c, options);
      events.push({ subscription_id: s.id, member_id: (c.after ?? c.before)!.id, version: s.event_schema_version, payload });
    }
  }
  if (events.length === 0) return 0;
  await tx.query(
    `INSERT INTO members_webhook_events (subscription_id, loyalty_club_id, action, member_id, event_schema_version, payload)
     SELECT (t.x ->> 'subscription_id')::bigint, $1, $2, (t.x ->> 'member_id')::bigint, (t.x ->> 'version')::int, t.x -> 'payload'
       FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS t(x, n)
      ORDER BY t.n`,
    [clubId, action, JSON.stringify(events)],
  );
  return events.length;
}

// ---- delivery ----

export const signBody = (secret: string, body: string) => 'sha256=' + createHmac('sha256', secret).update(body).digest('hex');

/**
 * The authentication headers of one POST: MPC's `X-Secret-Token` (the secret itself) and Hei's
 * HMAC of the body. During a rotation overlap each carries both secrets, the new one first —
 * `X-Secret-Token` as two header lines, the signature as a comma-separated list.
 */
export function authHeaders(body: string, secrets: string[]): Record<string, string | string[]> {
  return {
    [SECRET_HEADER]: secrets.length === 1 ? secrets[0] : secrets,
    [SIGNATURE_HEADER]: secrets.map((s) => signBody(s, body)).join(', '),
  };
}

export type DeliveryOutcome = 'delivered' | 'retry' | 'dropped' | 'failed';

interface PostResult {
  status: number | null;
  error: string | null;
}

/** 2xx delivered; 5xx, 408, 429 and network errors retried; any other answer dropped. */
export function classify(result: PostResult): 'delivered' | 'retry' | 'dropped' {
  if (result.status === null) return result.error === PERMANENT ? 'dropped' : 'retry';
  if (result.status >= 200 && result.status < 300) return 'delivered';
  if (result.status >= 500 || result.status === 408 || result.status === 429) return 'retry';
  return 'dropped';
}
const PERMANENT = 'target not allowed';

const agents = new WeakMap<WebhookSettings, { http: http.Agent; https: https.Agent }>();
function agentsFor(settings: WebhookSettings) {
  let a = agents.get(settings);
  if (!a) {
    const ca = settings.caFile ? [...tls.rootCertificates, readFileSync(settings.caFile, 'utf8')] : undefined;
    a = {
      http: new http.Agent({ keepAlive: true, maxSockets: 64 }),
      https: new https.Agent({ keepAlive: true, maxSockets: 64, ca }),
    };
    agents.set(settings, a);
  }
  return a;
}

function post(url: string, body: string, headers: Record<string, string | string[]>, settings: WebhookSettings, signal?: AbortSignal, retried = false): Promise<PostResult> {
  return new Promise((resolve) => {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      return resolve({ status: null, error: PERMANENT });
    }
    const host = target.hostname.replace(/^\[|\]$/g, '');
    if (isIP(host) && !settings.allowPrivateTargets && isPrivateAddress(host)) return resolve({ status: null, error: PERMANENT });
    if (target.protocol === 'http:' && !(settings.allowPrivateTargets && isLocalHost(target.hostname))) return resolve({ status: null, error: PERMANENT });
    const client = target.protocol === 'https:' ? https : http;
    const timeoutMs = settings.timeoutMs ?? DELIVERY_TIMEOUT_MS;
    let settled = false;
    const done = (r: PostResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      resolve(r);
    };
    const req = client.request(
      target,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body).toString(), 'user-agent': 'Hei-Webhooks/1', ...headers },
        timeout: timeoutMs,
        agent: target.protocol === 'https:' ? agentsFor(settings).https : agentsFor(settings).http,
        lookup: guardedLookup(settings) as any,
        signal,
      },
      (res) => {
        res.resume(); // the body is not needed; drain it so the socket is freed
        res.on('end', () => done({ status: res.statusCode ?? null, error: null }));
        res.on('error', (err) => done({ status: res.statusCode ?? null, error: err.message }));
      },
    );
    // A receiver that trickles its answer is cut off too: the whole exchange is bounded.
    const deadline = setTimeout(() => req.destroy(new Error('timeout')), timeoutMs);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => {
      const code = (err as NodeJS.ErrnoException).code;
      // A kept-alive socket the receiver closed meanwhile: the request never reached it, send again.
      if (req.reusedSocket && code === 'ECONNRESET' && !settled && !retried) {
        settled = true;
        clearTimeout(deadline);
        return resolve(post(url, body, headers, settings, signal, true));
      }
      done({ status: null, error: code === 'EPRIVATE' ? PERMANENT : code ?? err.message });
    });
    req.end(body);
  });
}

/** The wait before retry n (n ≥ 1): BASE · 2^(n−1), capped at 6 h. */
export function backoffMs(attempts: number, settings: WebhookSettings): number {
  return Math.min((settings.backoffBaseMs ?? BACKOFF_BASE_MS) * 2 ** Math.min(attempts - 1, 30), BACKOFF_CAP_MS);
}

interface ClaimedSubscription {
  id: number;
  url: string;
  secrets: string[];
}

const secretsOf = (r: { secret_token: string; previous_secret_token: string | null; previous_secret_expires_at: Date | string | null }, now: Date) =>
  r.previous_secret_token && r.previous_secret_expires_at && new Date(r.previous_secret_expires_at) > now ? [r.secret_token, r.previous_secret_token] : [r.secret_token];

async function logDelivery(db: Queryable, row: { subscription_id: number; kind: 'events' | 'ping'; event_ids: number[]; outcome: DeliveryOutcome; result: PostResult; duration: number; at: Date }): Promise<number> {
  const { rows } = await db.query<{ id: number }>(
    `INSERT INTO members_webhook_deliveries (subscription_id, kind, event_ids, outcome, response_status, error, duration_ms, attempted_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
    [row.subscription_id, row.kind, row.event_ids, row.outcome, row.result.status, row.result.error, row.duration, row.at],
  );
  return Number(rows[0].id);
}

/** A claim keeps posting while the receiver takes batches, within this share of the lease. */
const CLAIM_BUDGET_MS = (LEASE_SECONDS * 1000) / 3;

/**
 * Posts the head of one subscription's queue (≤ BATCH_SIZE events of one version), records the
 * outcome, and goes on with the next batch while they are delivered (within a time budget well
 * inside the lease). Batches go one after the other: FIFO, one in flight.
 */
async function deliverBatches(db: Database, sub: ClaimedSubscription, settings: WebhookSettings, now: Date, signal?: AbortSignal): Promise<number> {
  const claimed = Date.now();
  let sent = 0;
  try {
    for (let round = 0; round < (settings.maxBatchesPerClaim ?? 1000) && Date.now() - claimed < CLAIM_BUDGET_MS; round++) {
      // Payloads as stored text: the body is spliced from them, never parsed and serialised again.
      const { rows } = await db.query<{ id: number; payload: string; attempts: number; created_at: Date | string; event_schema_version: number }>(
        `SELECT id, payload::text AS payload, attempts, created_at, event_schema_version FROM members_webhook_events
          WHERE subscription_id = $1 AND status = 'pending' ORDER BY id LIMIT $2`,
        [sub.id, settings.batchSize ?? BATCH_SIZE],
      );
      if (rows.length === 0) break;
      const version = rows[0].event_schema_version;
      const cut = rows.findIndex((r) => r.event_schema_version !== version);
      const batch = cut === -1 ? rows : rows.slice(0, cut);
      const ids = batch.map((r) => Number(r.id));
      const body = batchBody(version, batch.map((r) => r.payload));
      const started = Date.now();
      const result = await post(sub.url, body, authHeaders(body, sub.secrets), settings, signal);
      const duration = Date.now() - started;
      let outcome: DeliveryOutcome = classify(result);
      // The queue head decides: its age bounds the retries of the whole batch.
      const attempts = Math.max(...batch.map((r) => r.attempts)) + 1;
      const nextAt = new Date(now.getTime() + backoffMs(attempts, settings));
      if (outcome === 'retry' && nextAt.getTime() - new Date(batch[0].created_at).getTime() > RETRY_FOR_MS) outcome = 'failed';
      // The log row and the events' new state in one statement (one round trip, atomic).
      await db.query(
        `WITH logged AS (
           INSERT INTO members_webhook_deliveries (subscription_id, kind, event_ids, outcome, response_status, error, duration_ms, attempted_at)
           VALUES ($1, 'events', $2, $3, $4, $5, $6, $7))
         UPDATE members_webhook_events
            SET attempts = attempts + 1,
                status = CASE WHEN $3 = 'retry' THEN status ELSE $3 END,
                next_attempt_at = CASE WHEN $3 = 'retry' THEN $8::timestamptz ELSE next_attempt_at END,
                delivered_at = CASE WHEN $3 = 'delivered' THEN $7::timestamptz END
          WHERE id = ANY ($2::bigint[])`,
        [sub.id, ids, outcome, result.status, result.error, duration, now, nextAt],
      );
      sent += ids.length;
      if (outcome !== 'delivered' || signal?.aborted) break;
    }
    return sent;
  } finally {
    await db.query('UPDATE members_changes_subscriptions SET delivery_locked_until = NULL WHERE id = $1', [sub.id]);
  }
}

/**
 * One run of the delivery job: claims subscriptions whose queue head is due (lease on the
 * subscription: one batch in flight per subscription, several workers share the subscriptions),
 * posts its batches, records each outcome. Returns the number of events attempted.
 */
export async function deliverDueEvents(db: Database, settings: WebhookSettings, opts: { limit?: number; signal?: AbortSignal; now?: Date } = {}): Promise<number> {
  const now = opts.now ?? new Date();
  const { rows } = await db.query<{ id: number; url: string; secret_token: string; previous_secret_token: string | null; previous_secret_expires_at: Date | null }>(
    `WITH due AS (
       SELECT s.id FROM members_changes_subscriptions s
        WHERE (s.delivery_locked_until IS NULL OR s.delivery_locked_until < $1)
          AND (SELECT e.next_attempt_at FROM members_webhook_events e
                WHERE e.subscription_id = s.id AND e.status = 'pending' ORDER BY e.id LIMIT 1) <= $1
        ORDER BY s.id LIMIT $2 FOR UPDATE SKIP LOCKED)
     UPDATE members_changes_subscriptions s SET delivery_locked_until = $1::timestamptz + make_interval(secs => $3)
       FROM due WHERE s.id = due.id
     RETURNING s.id, s.url, s.secret_token, s.previous_secret_token, s.previous_secret_expires_at`,
    [now, opts.limit ?? 20, LEASE_SECONDS],
  );
  const counts = await Promise.all(
    rows.map((r) => deliverBatches(db, { id: Number(r.id), url: r.url, secrets: secretsOf(r, now) }, settings, now, opts.signal)),
  );
  return counts.reduce((a, b) => a + b, 0);
}

// ---- deliveries log, ping, redelivery ----

export interface Delivery {
  id: number;
  kind: 'events' | 'ping';
  events_count: number;
  event_ids: number[];
  outcome: DeliveryOutcome;
  response_status: number | null;
  error: string | null;
  duration_ms: number;
  attempted_at: string;
}

const DELIVERY_COLUMNS = 'id, kind, to_jsonb(event_ids) AS event_ids, outcome, response_status, error, duration_ms, attempted_at';
const toDelivery = (r: Record<string, any>): Delivery => ({
  id: Number(r.id),
  kind: r.kind,
  events_count: r.event_ids.length,
  event_ids: r.event_ids.map(Number),
  outcome: r.outcome,
  response_status: r.response_status,
  error: r.error,
  duration_ms: r.duration_ms,
  attempted_at: iso(r.attempted_at)!,
});

export async function listDeliveries(db: Queryable, clubId: number, subscriptionId: number, page: number, perPage: number): Promise<{ items: Delivery[]; total: number }> {
  await getSubscription(db, clubId, subscriptionId);
  const { rows, total } = await selectPage<any>(
    db, DELIVERY_COLUMNS, 'FROM members_webhook_deliveries WHERE subscription_id = $1', `ORDER BY id DESC ${limitOffset({ page_no: page, per_page: perPage })}`, [subscriptionId],
  );
  return { items: rows.map(toDelivery), total };
}

/** A test POST with no events (`{"version": n, "events": []}`), answered with its logged outcome. */
export async function pingSubscription(db: Queryable, clubId: number, id: number, settings: WebhookSettings): Promise<Delivery> {
  const { rows } = await db.query<{ url: string; secret_token: string; previous_secret_token: string | null; previous_secret_expires_at: Date | null; event_schema_version: number }>(
    `SELECT url, secret_token, previous_secret_token, previous_secret_expires_at, event_schema_version FROM members_changes_subscriptions WHERE loyalty_club_id = $1 AND id = $2`,
    [clubId, id],
  );
  if (!rows[0]) throw notFound('Members changes subscription');
  const now = new Date();
  const body = batchBody(rows[0].event_schema_version, []);
  const started = Date.now();
  const result = await post(rows[0].url, body, authHeaders(body, secretsOf(rows[0], now)), settings);
  const outcome = classify(result) === 'delivered' ? 'delivered' : 'failed';
  const deliveryId = await logDelivery(db, { subscription_id: id, kind: 'ping', event_ids: [], outcome, result, duration: Date.now() - started, at: now });
  const { rows: d } = await db.query(`SELECT ${DELIVERY_COLUMNS} FROM members_webhook_deliveries WHERE id = $1`, [deliveryId]);
  return toDelivery(d[0]);
}

/** Queues the events of a logged delivery again, at the end of the subscription's queue. */
export async function redeliver(db: Queryable, clubId: number, subscriptionId: number, deliveryId: number): Promise<{ events_count: number }> {
  await getSubscription(db, clubId, subscriptionId);
  const { rows } = await db.query<{ event_ids: number[] }>('SELECT to_jsonb(event_ids) AS event_ids FROM members_webhook_deliveries WHERE subscription_id = $1 AND id = $2', [subscriptionId, deliveryId]);
  if (!rows[0]) throw notFound('Delivery');
  const r = await db.query(
    `INSERT INTO members_webhook_events (subscription_id, loyalty_club_id, action, member_id, event_schema_version, payload)
     SELECT subscription_id, loyalty_club_id, action, member_id, event_schema_version, payload FROM members_webhook_events
      WHERE subscription_id = $1 AND id = ANY ($2::bigint[]) ORDER BY id`,
    [subscriptionId, rows[0].event_ids.map(Number)],
  );
  return { events_count: r.rowCount };
}

/** Settled events and the delivery log (payloads may hold personal data) are kept 30 days. */
export async function purgeOldWebhookEvents(db: Queryable, olderThanDays = 30): Promise<number> {
  const r = await db.query(
    `DELETE FROM members_webhook_events WHERE status <> 'pending' AND created_at < now() - make_interval(days => $1)`,
    [olderThanDays],
  );
  await db.query(`DELETE FROM members_webhook_deliveries WHERE attempted_at < now() - make_interval(days => $1)`, [olderThanDays]);
  return r.rowCount;
}
