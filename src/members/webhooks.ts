// Members changes subscriptions (members-api §5.6): a club's webhooks, the outbox of events
// written in the transaction of each member change, and the background delivery with retries.
import { createHmac, randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import type { Database, Queryable } from '../db/connection.ts';
import { notFound, Violations } from '../platform/errors.ts';
import { isAllowedTargetHost, isPublicAddress, publicOnlyLookup, resolvesPublicOnly } from '../platform/net-targets.ts';
import { randomToken } from '../platform/tokens.ts';
import type { Member } from './member-input.ts';
import { limitOffset, selectPage } from '../platform/pagination.ts';

export type MemberAction = 'create' | 'update' | 'delete';

/** Request header carrying `sha256=<hex HMAC-SHA256 of the raw body, keyed by secret_token>`. */
export const SIGNATURE_HEADER = 'X-Hei-Signature';
export const EVENT_ID_HEADER = 'X-Hei-Event-Id';

/** Deliveries give up after this many attempts; the n-th retry waits BASE · 2^(n-1), capped. */
export const MAX_DELIVERY_ATTEMPTS = 8;
const BACKOFF_BASE_MS = 30_000;
const BACKOFF_CAP_MS = 6 * 3600_000;
const DELIVERY_TIMEOUT_MS = 10_000;
const LEASE_SECONDS = 60;

export interface WebhookSettings {
  /** Allow targets in loopback / private / link-local ranges (`WEBHOOKS_ALLOW_PRIVATE=1`). */
  allowPrivateTargets: boolean;
  /** Backoff base; tests shorten it. */
  backoffBaseMs?: number;
}

export function webhookSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): WebhookSettings {
  const flag = (env.WEBHOOKS_ALLOW_PRIVATE ?? '').toLowerCase();
  return { allowPrivateTargets: ['1', 'true', 'yes', 'on'].includes(flag), backoffBaseMs: Number(env.WEBHOOKS_BACKOFF_BASE_MS) || undefined };
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
  is_person_id_sent, excluded_sources, created_at, updated_at`;
const EXCLUDABLE_ACTIONS = ['create', 'import', 'update', 'delete'];

const toSubscription = (r: Record<string, any>): Subscription => ({
  ...(r as Subscription),
  created_at: new Date(r.created_at).toISOString(),
  updated_at: new Date(r.updated_at).toISOString(),
});

function checkSubscription(input: SubscriptionInput, settings: WebhookSettings): Violations {
  const v = new Violations();
  if (input.url !== undefined) checkTargetUrl(input.url, settings, v);
  for (const key of Object.keys(input.excluded_sources ?? {})) {
    if (!EXCLUDABLE_ACTIONS.includes(key)) v.add(['excluded_sources', key], 'not_permitted');
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

/** Deletes the subscription with its pending events and their attempts. */
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

/**
 * Writes one event per (subscription, member) for a change, in the caller's transaction, so an
 * event exists exactly when its change was committed. `source` is the X-Product-Name of the
 * writer; subscriptions that exclude it for this action get nothing.
 */
export async function enqueueMemberEvents(tx: Queryable, clubId: number, action: MemberAction, members: Member[], source: string, occurredAt: string): Promise<number> {
  if (members.length === 0) return 0;
  const { rows: subs } = await tx.query<Subscription & { slug: string }>(
    `SELECT s.id, s.event_schema_version, s.is_person_id_sent, s.excluded_sources, c.slug
       FROM members_changes_subscriptions s JOIN loyalty_clubs c ON c.id = s.loyalty_club_id
      WHERE s.loyalty_club_id = $1 AND s.${FLAG[action]}`,
    [clubId],
  );
  const events: Array<{ subscription_id: number; member_id: number; payload: unknown }> = [];
  for (const s of subs) {
    const excluded = [...(s.excluded_sources[action] ?? []), ...(action === 'create' ? s.excluded_sources.import ?? [] : [])];
    if (excluded.includes(source)) continue;
    for (const m of members) {
      const payload: Record<string, unknown> = {
        event_id: randomUUID(),
        event_schema_version: s.event_schema_version,
        action,
        loyalty_club_slug: s.slug,
        member_id: m.id,
        source,
        occurred_at: occurredAt,
      };
      if (s.is_person_id_sent) payload.person_id = m.person_id;
      if (s.event_schema_version === 2) {
        const { person_id: _p, ...member } = m;
        payload.member = s.is_person_id_sent ? m : member;
      }
      events.push({ subscription_id: s.id, member_id: m.id, payload });
    }
  }
  if (events.length === 0) return 0;
  await tx.query(
    `INSERT INTO members_webhook_events (subscription_id, loyalty_club_id, action, member_id, payload)
     SELECT e.subscription_id, $1, $2, e.member_id, e.payload FROM jsonb_to_recordset($3::jsonb) AS e(subscription_id bigint, member_id bigint, payload jsonb)`,
    [clubId, action, JSON.stringify(events)],
  );
  return events.length;
}

// ---- delivery ----

export const signBody = (secret: string, body: string) => 'sha256=' + createHmac('sha256', secret).update(body).digest('hex');

interface PostResult {
  status: number | null;
  error: string | null;
}

function post(url: string, body: string, headers: Record<string, string>, settings: WebhookSettings, signal?: AbortSignal): Promise<PostResult> {
  return new Promise((resolve) => {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      return resolve({ status: null, error: 'invalid url' });
    }
    const client = target.protocol === 'https:' ? https : http;
    const host = target.hostname.replace(/^\[|\]$/g, '');
    if (isIP(host) && !settings.allowPrivateTargets && isPrivateAddress(host)) return resolve({ status: null, error: 'private address not allowed' });
    const req = client.request(
      target,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body).toString(), 'user-agent': 'Hei-Webhooks/1', ...headers },
        timeout: DELIVERY_TIMEOUT_MS,
        lookup: guardedLookup(settings) as any,
        signal,
      },
      (res) => {
        res.resume(); // the body is not needed; drain it so the socket is freed
        res.on('end', () => resolve({ status: res.statusCode ?? null, error: null }));
        res.on('error', (err) => resolve({ status: res.statusCode ?? null, error: err.message }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ status: null, error: (err as NodeJS.ErrnoException).code ?? err.message }));
    req.end(body);
  });
}

export function backoffMs(attempts: number, settings: WebhookSettings): number {
  return Math.min((settings.backoffBaseMs ?? BACKOFF_BASE_MS) * 2 ** (attempts - 1), BACKOFF_CAP_MS);
}

/**
 * One run of the delivery job: claims due events (SKIP LOCKED + lease so several workers share
 * the work), posts them, records each attempt. Returns the number of events attempted.
 */
export async function deliverDueEvents(db: Database, settings: WebhookSettings, opts: { limit?: number; signal?: AbortSignal } = {}): Promise<number> {
  const { rows } = await db.query<{ id: number; payload: unknown; attempts: number; url: string; secret_token: string }>(
    `WITH due AS (
       SELECT id FROM members_webhook_events
        WHERE status = 'pending' AND next_attempt_at <= now() AND (locked_until IS NULL OR locked_until < now())
        ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)
     UPDATE members_webhook_events e SET locked_until = now() + make_interval(secs => $2)
       FROM due, members_changes_subscriptions s
      WHERE e.id = due.id AND s.id = e.subscription_id
     RETURNING e.id, e.payload, e.attempts, s.url, s.secret_token`,
    [opts.limit ?? 20, LEASE_SECONDS],
  );
  await Promise.all(
    rows.map(async (event) => {
      const body = JSON.stringify(event.payload);
      const started = Date.now();
      const result = await post(
        event.url,
        body,
        { [SIGNATURE_HEADER]: signBody(event.secret_token, body), [EVENT_ID_HEADER]: String((event.payload as any).event_id ?? event.id) },
        settings,
        opts.signal,
      );
      const ok = result.status !== null && result.status >= 200 && result.status < 300;
      const attempts = event.attempts + 1;
      const error = ok ? null : result.error ?? `HTTP ${result.status}`;
      await db.transaction(async (tx) => {
        await tx.query('INSERT INTO members_webhook_attempts (event_id, response_status, error, duration_ms) VALUES ($1, $2, $3, $4)', [
          event.id, result.status, error, Date.now() - started,
        ]);
        if (ok) {
          await tx.query(`UPDATE members_webhook_events SET status = 'delivered', attempts = $2, delivered_at = now(), locked_until = NULL WHERE id = $1`, [event.id, attempts]);
        } else if (attempts >= MAX_DELIVERY_ATTEMPTS) {
          await tx.query(`UPDATE members_webhook_events SET status = 'failed', attempts = $2, locked_until = NULL WHERE id = $1`, [event.id, attempts]);
        } else {
          await tx.query(
            `UPDATE members_webhook_events SET attempts = $2, locked_until = NULL, next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1`,
            [event.id, attempts, backoffMs(attempts, settings) / 1000],
          );
        }
      });
    }),
  );
  return rows.length;
}

/** Delivered or abandoned events (payloads may hold personal data) are kept 30 days for inspection. */
export async function purgeOldWebhookEvents(db: Queryable, olderThanDays = 30): Promise<number> {
  const r = await db.query(
    `DELETE FROM members_webhook_events WHERE status <> 'pending' AND created_at < now() - make_interval(days => $1)`,
    [olderThanDays],
  );
  return r.rowCount;
}
