// Transport configuration per loyalty club and channel: a URL (like DATABASE_URL) for the
// primary and optionally a secondary transport, plus a rate. Stored encrypted, shown redacted.
//
//   smpp://SYSTEM_ID:PASSWORD@HOST:PORT?window=100&enquire_link=30&reconnect_max=30&system_type=X   (ssmpp:// TLS)
//   https://gateway/send?header.Authorization=Bearer%20…&field.to=msisdn&response_id=id&report_secret=…
//   smtp://USER:PASS@HOST:PORT?pool=5[&starttls=require]   (smtps:// TLS)
//   webpush:?subject=mailto:…&public_key=…&private_key=…
//   fcm:?project=…&credentials=FILE[&endpoint=…&token_uri=…]
// smpp, http(s) and smtp(s) URLs take `ca=FILE`: PEM certificate(s) trusted for TLS in addition to
// Node's default CAs (a provider or relay with a private CA or a self-signed certificate).
import { readFileSync, statSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import type { Database, Queryable } from '../db/connection.ts';
import type { Channel, DeliveryReportSink, Transport } from './transport.ts';
import { decryptSecret, encryptSecret, loadSecretKey } from './secrets.ts';
import { SmppTransport } from './smpp.ts';
import { HttpSmsTransport } from './http-sms.ts';
import { SmtpTransport } from './smtp.ts';
import { WebPushTransport } from './webpush.ts';
import { FcmTransport } from './fcm.ts';
import { DbBucketStore, parseRate, RateLimitedTransport, type BucketStore } from './ratelimit.ts';
import { FailoverTransport, type FailoverOptions } from './failover.ts';

export type TransportKind = 'smpp' | 'http-sms' | 'smtp' | 'webpush' | 'fcm';
export const CHANNELS: Channel[] = ['sms', 'email', 'push'];

const KIND_CHANNEL: Record<TransportKind, Channel> = { smpp: 'sms', 'http-sms': 'sms', smtp: 'email', webpush: 'push', fcm: 'push' };

export function transportKind(url: URL): TransportKind {
  switch (url.protocol) {
    case 'smpp:':
    case 'ssmpp:':
      return 'smpp';
    case 'http:':
    case 'https:':
      return 'http-sms';
    case 'smtp:':
    case 'smtps:':
      return 'smtp';
    case 'webpush:':
      return 'webpush';
    case 'fcm:':
      return 'fcm';
    default:
      throw new Error(`unsupported transport URL scheme "${url.protocol}" (smpp, ssmpp, http, https, smtp, smtps, webpush, fcm)`);
  }
}

const num = (v: string | null, dflt: number) => (v == null || v === '' || Number.isNaN(Number(v)) ? dflt : Number(v));

/** Parses and checks a URL for a channel without connecting anywhere. Throws a readable message. */
export function checkTransportUrl(raw: string, channel: Channel): { url: URL; kind: TransportKind } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error('not a URL');
  }
  const kind = transportKind(url);
  if (KIND_CHANNEL[kind] !== channel) throw new Error(`a ${url.protocol}// URL is a ${KIND_CHANNEL[kind]} transport, not ${channel}`);
  const q = url.searchParams;
  const need = (names: string[]) => {
    const missing = names.filter((n) => !q.get(n));
    if (missing.length) throw new Error(`${kind} URL needs ${missing.join(', ')}`);
  };
  if (kind === 'smpp' && (!url.hostname || !url.username)) throw new Error('smpp URL needs SYSTEM_ID:PASSWORD@HOST[:PORT]');
  if (kind === 'smtp' && !url.hostname) throw new Error('smtp URL needs a host');
  // Gateway credentials travel in headers: plain http only to this machine (tests, a local relay).
  if (kind === 'http-sms' && url.protocol === 'http:' && !['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) {
    throw new Error('an SMS gateway URL must be https:// (http:// only for localhost)');
  }
  if (kind === 'webpush') need(['subject', 'public_key', 'private_key']);
  if (kind === 'fcm') need(['project', 'credentials']);
  if (q.has('ca')) readCa(q.get('ca')!, kind);
  return { url, kind };
}

/** The `ca` parameter: a readable PEM file with at least one certificate, for smpp/http-sms/smtp. */
function readCa(file: string, kind: TransportKind): string {
  if (kind !== 'smpp' && kind !== 'http-sms' && kind !== 'smtp') throw new Error(`a ${kind} URL takes no ca parameter`);
  let pem: string;
  try {
    if (!statSync(file).isFile()) throw new Error('not a file');
    pem = readFileSync(file, 'utf8');
  } catch {
    throw new Error(`ca file ${file || '(empty)'} not found or not readable`);
  }
  try {
    new X509Certificate(pem);
  } catch {
    throw new Error(`ca file ${file} holds no PEM certificate`);
  }
  return pem;
}

/** Node's default CAs plus the `ca` file's certificates (a `ca` TLS option replaces the defaults). */
const trustedCa = (q: URLSearchParams, kind: TransportKind): string[] | undefined =>
  q.has('ca') ? [...rootCertificates, readCa(q.get('ca')!, kind)] : undefined;

export interface TransportFactoryOptions {
  /** Where delivery receipts of this transport go (SMPP deliver_sm). */
  onReports?: DeliveryReportSink;
}

/** Builds the adapter for a URL. SMPP connects (in the background) at once. */
export function transportFromUrl(raw: string, channel: Channel, opts: TransportFactoryOptions = {}): Transport {
  const { url, kind } = checkTransportUrl(raw, channel);
  const q = url.searchParams;
  const user = decodeURIComponent(url.username);
  const password = decodeURIComponent(url.password);
  switch (kind) {
    case 'smpp':
      return new SmppTransport({
        host: url.hostname,
        port: num(url.port, url.protocol === 'ssmpp:' ? 3550 : 2775),
        tls: url.protocol === 'ssmpp:',
        systemId: user,
        password,
        systemType: q.get('system_type') ?? undefined,
        window: num(q.get('window'), 100),
        enquireLinkMs: num(q.get('enquire_link'), 30) * 1000,
        reconnectMaxMs: num(q.get('reconnect_max'), 30) * 1000,
        ca: trustedCa(q, kind),
        onReports: opts.onReports,
      });
    case 'http-sms': {
      const headers: Record<string, string> = {};
      const fields: Record<string, string> = {};
      const target = new URL(url.toString());
      target.username = '';
      target.password = '';
      for (const [k, v] of q) {
        if (k.startsWith('header.')) headers[k.slice(7)] = v;
        else if (k.startsWith('field.')) fields[k.slice(6)] = v;
        else continue;
        target.searchParams.delete(k);
      }
      for (const k of ['response_id', 'report_secret', 'concurrency', 'ca']) target.searchParams.delete(k);
      if (user) headers.Authorization ??= 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');
      return new HttpSmsTransport({ url: target.toString(), headers, fields, responseId: q.get('response_id') ?? undefined, concurrency: num(q.get('concurrency'), 10), ca: trustedCa(q, kind) });
    }
    case 'smtp':
      return new SmtpTransport({
        host: url.hostname,
        port: num(url.port, url.protocol === 'smtps:' ? 465 : 587),
        secure: url.protocol === 'smtps:',
        user: user || undefined,
        password,
        pool: num(q.get('pool'), 5),
        maxMessages: num(q.get('max_messages'), 1000),
        messageIdDomain: q.get('message_id_domain') ?? undefined,
        insecureTls: q.get('tls_verify') === 'false',
        requireTls: q.get('starttls') === 'require',
        ca: trustedCa(q, kind),
      });
    case 'webpush':
      return new WebPushTransport({ subject: q.get('subject')!, publicKey: q.get('public_key')!, privateKey: q.get('private_key')!, ttl: num(q.get('ttl'), 86_400), concurrency: num(q.get('concurrency'), 20) });
    case 'fcm': {
      const account = JSON.parse(readFileSync(q.get('credentials')!, 'utf8'));
      return new FcmTransport({ project: q.get('project')!, account, tokenUri: q.get('token_uri') ?? undefined, endpoint: q.get('endpoint') ?? undefined, concurrency: num(q.get('concurrency'), 20) });
    }
  }
}

/** Rate buckets are per provider account, shared by every club that uses the same one. */
export function accountKey(raw: string): string {
  const url = new URL(raw);
  const q = url.searchParams;
  switch (transportKind(url)) {
    case 'webpush':
      return `webpush:${q.get('public_key')}`;
    case 'fcm':
      return `fcm:${q.get('project')}`;
    default:
      return `${url.protocol}//${decodeURIComponent(url.username)}@${url.host}${url.protocol.startsWith('http') ? url.pathname : ''}`;
  }
}

const SECRET_PARAM = /^(password|pass|secret|.*_secret|private_key|token|.*_token|api_key|apikey|key|auth|header\..*)$/i;

/** The URL with its password and secret parameters replaced by `***`. */
export function redactUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return '***';
  }
  if (url.password) url.password = '***';
  for (const k of [...new Set(url.searchParams.keys())]) if (SECRET_PARAM.test(k)) url.searchParams.set(k, '***');
  return url.toString().replace(/%2A%2A%2A/g, '***');
}

// ---- store -------------------------------------------------------------------------------------

export type Role = 'primary' | 'secondary';
const aad = (clubId: number, channel: Channel, role: Role) => `transport:${clubId}:${channel}:${role}`;

export interface StoredTransport {
  channel: Channel;
  role: Role;
  url: string;
  rate: string | null;
  updatedAt: Date;
}

export async function setClubTransport(
  db: Queryable,
  clubId: number,
  t: { channel: Channel; role?: Role; url: string; rate?: string | null },
  key: Buffer = loadSecretKey(),
): Promise<void> {
  const role = t.role ?? 'primary';
  checkTransportUrl(t.url, t.channel);
  if (t.rate) parseRate(t.rate);
  await db.query(
    `INSERT INTO transport_configs (loyalty_club_id, channel, role, url_encrypted, rate) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (loyalty_club_id, channel, role) DO UPDATE SET url_encrypted = EXCLUDED.url_encrypted, rate = EXCLUDED.rate, updated_at = now()`,
    [clubId, t.channel, role, encryptSecret(key, t.url, aad(clubId, t.channel, role)), t.rate ?? null],
  );
}

/** Back to the outbox: removes primary and secondary of the channel. */
export async function resetClubTransport(db: Queryable, clubId: number, channel: Channel): Promise<number> {
  return (await db.query(`DELETE FROM transport_configs WHERE loyalty_club_id = $1 AND channel = $2`, [clubId, channel])).rowCount;
}

/** Decrypted configuration: for building transports only, never for display. */
export async function loadClubTransportConfigs(
  db: Queryable,
  clubId: number,
  key: Buffer = loadSecretKey(),
  onUnreadable?: (channel: Channel, role: Role) => void,
): Promise<StoredTransport[]> {
  const { rows } = await db.query<{ channel: Channel; role: Role; url_encrypted: string; rate: string | null; updated_at: Date }>(
    `SELECT channel, role, url_encrypted, rate, updated_at FROM transport_configs WHERE loyalty_club_id = $1 ORDER BY channel, role`,
    [clubId],
  );
  const out: StoredTransport[] = [];
  for (const r of rows) {
    try {
      out.push({ channel: r.channel, role: r.role, url: decryptSecret(key, r.url_encrypted, aad(clubId, r.channel, r.role)), rate: r.rate, updatedAt: r.updated_at });
    } catch (err) {
      if (!onUnreadable) throw err;
      onUnreadable(r.channel, r.role);
    }
  }
  return out;
}

export interface RedactedChannelSettings {
  /** 'unreadable': stored with another key than this process has (HEI_SECRET_KEY). */
  transport: TransportKind | 'outbox' | 'unreadable';
  url: string | null;
  rate: string | null;
  secondary: { transport: TransportKind | 'unreadable'; url: string | null; rate: string | null } | null;
}

/** For `GET /v1/messages/settings` and `hei transports list`: every channel, secrets redacted. */
export async function redactedSettings(db: Queryable, clubId: number, key: Buffer = loadSecretKey()): Promise<Record<Channel, RedactedChannelSettings>> {
  // A settings page must not fail because of a key mix-up: such rows show as 'unreadable'.
  const unreadable = new Set<string>();
  const configs = await loadClubTransportConfigs(db, clubId, key, (channel, role) => unreadable.add(`${channel}:${role}`));
  const out = {} as Record<Channel, RedactedChannelSettings>;
  for (const channel of CHANNELS) {
    const p = configs.find((c) => c.channel === channel && c.role === 'primary');
    const s = configs.find((c) => c.channel === channel && c.role === 'secondary');
    const badP = unreadable.has(`${channel}:primary`);
    const badS = unreadable.has(`${channel}:secondary`);
    out[channel] = {
      transport: p ? transportKind(new URL(p.url)) : badP ? 'unreadable' : 'outbox',
      url: p ? redactUrl(p.url) : null,
      rate: p?.rate ?? null,
      secondary: s ? { transport: transportKind(new URL(s.url)), url: redactUrl(s.url), rate: s.rate } : badS ? { transport: 'unreadable', url: null, rate: null } : null,
    };
  }
  return out;
}

// ---- building a club's transports ---------------------------------------------------------------

export interface ClubTransportOptions extends TransportFactoryOptions {
  buckets?: BucketStore;
  failover?: FailoverOptions;
  /** How long a rate-limited message waits inside one send(). */
  maxRateWaitMs?: number;
}

function build(db: Database, c: StoredTransport, opts: ClubTransportOptions): Transport {
  const t = transportFromUrl(c.url, c.channel, opts);
  if (!c.rate) return t;
  return new RateLimitedTransport(t, { account: accountKey(c.url), windows: parseRate(c.rate), store: opts.buckets ?? new DbBucketStore(db), maxWaitMs: opts.maxRateWaitMs });
}

/** The configured transports of a club: primary (rate-limited), wrapped in failover when a secondary is set. */
export async function loadClubTransports(db: Database, clubId: number, opts: ClubTransportOptions = {}): Promise<Partial<Record<Channel, Transport>>> {
  const configs = await loadClubTransportConfigs(db, clubId);
  const out: Partial<Record<Channel, Transport>> = {};
  for (const channel of CHANNELS) {
    const p = configs.find((c) => c.channel === channel && c.role === 'primary');
    if (!p) continue;
    const s = configs.find((c) => c.channel === channel && c.role === 'secondary');
    const primary = build(db, p, opts);
    out[channel] = s ? new FailoverTransport(primary, build(db, s, opts), opts.failover) : primary;
  }
  return out;
}
