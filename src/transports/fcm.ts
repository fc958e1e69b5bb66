// Push through Firebase Cloud Messaging HTTP v1. The access token comes from a service-account
// JWT (RS256, signed with node:crypto) exchanged at the account's token URI; both the token URI
// and the FCM endpoint are configurable so that tests and proxies can stand in for Google.
import { createSign } from 'node:crypto';
import type { OutgoingMessage, SendResult, Transport } from './transport.ts';
import { mapLimited } from './webpush.ts';

export interface ServiceAccount {
  client_email: string;
  private_key: string;
  token_uri?: string;
  project_id?: string;
}

export interface FcmOptions {
  project: string;
  account: ServiceAccount;
  /** Overrides the account's token_uri. */
  tokenUri?: string;
  /** Base URL of the FCM API. */
  endpoint?: string;
  concurrency?: number;
  timeoutMs?: number;
}

const SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';
const b64url = (v: string | Buffer) => Buffer.from(v).toString('base64url');

export function serviceAccountJwt(account: ServiceAccount, aud: string, nowSec = Math.floor(Date.now() / 1000)): string {
  const head = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT' }));
  const claims = b64url(JSON.stringify({ iss: account.client_email, scope: SCOPE, aud, iat: nowSec, exp: nowSec + 3600 }));
  const sig = createSign('RSA-SHA256').update(`${head}.${claims}`).sign(account.private_key);
  return `${head}.${claims}.${b64url(sig)}`;
}

export class FcmTransport implements Transport {
  readonly name: string;
  private token: { value: string; expires: number } | null = null;
  private tokenRequest: Promise<string> | null = null;
  private readonly tokenUri: string;
  private readonly sendUrl: string;

  constructor(private o: FcmOptions) {
    this.name = `fcm:${o.project}`;
    this.tokenUri = o.tokenUri ?? o.account.token_uri ?? 'https://oauth2.googleapis.com/token';
    this.sendUrl = `${(o.endpoint ?? 'https://fcm.googleapis.com').replace(/\/$/, '')}/v1/projects/${encodeURIComponent(o.project)}/messages:send`;
  }

  /** One exchange at a time; the token is reused until a minute before it expires. */
  private accessToken(force = false): Promise<string> {
    if (!force && this.token && this.token.expires > Date.now() + 60_000) return Promise.resolve(this.token.value);
    this.tokenRequest ??= (async () => {
      try {
        const res = await fetch(this.tokenUri, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: serviceAccountJwt(this.o.account, this.tokenUri) }),
          signal: AbortSignal.timeout(this.o.timeoutMs ?? 15_000),
        });
        const json: any = await res.json().catch(() => ({}));
        if (!res.ok || !json.access_token) throw new Error(`token exchange HTTP ${res.status}: ${json.error ?? ''}`);
        this.token = { value: json.access_token, expires: Date.now() + (Number(json.expires_in) || 3600) * 1000 };
        return this.token.value;
      } finally {
        this.tokenRequest = null;
      }
    })();
    return this.tokenRequest;
  }

  body(m: OutgoingMessage): object {
    const c = m.content;
    if (c.kind !== 'push') throw new Error('not push');
    // FCM data values must be strings; the click-through URL travels in data too.
    const data: Record<string, string> = { ...(c.data ?? {}) };
    if (c.url) data.url = c.url;
    return {
      message: {
        token: m.recipient.pushToken,
        notification: { title: c.title, body: c.body, ...(c.image ? { image: c.image } : {}) },
        data,
      },
    };
  }

  private async sendOne(m: OutgoingMessage, retried = false): Promise<SendResult> {
    if (m.content.kind !== 'push' || !m.recipient.pushToken) return { status: 'permanent', error: 'not a push with a token' };
    let res: Response;
    try {
      const token = await this.accessToken(retried);
      res = await fetch(this.sendUrl, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(this.body(m)),
        signal: AbortSignal.timeout(this.o.timeoutMs ?? 15_000),
      });
    } catch (err) {
      return { status: 'retryable', error: `FCM unreachable: ${(err as Error).message}` };
    }
    const json: any = await res.json().catch(() => ({}));
    if (res.ok) return { status: 'sent', providerId: String(json.name ?? `fcm-${m.dispatchId}`) };
    if (res.status === 401 && !retried) return this.sendOne(m, true); // token revoked or expired early
    const code: string =
      (json.error?.details ?? []).find((d: any) => d?.errorCode)?.errorCode ?? json.error?.status ?? `HTTP ${res.status}`;
    const error = `FCM ${code}: ${json.error?.message ?? ''}`.trim();
    if (code === 'UNREGISTERED') return { status: 'permanent', error, gone: true };
    if (res.status === 429 || res.status >= 500 || code === 'UNAVAILABLE' || code === 'INTERNAL' || code === 'QUOTA_EXCEEDED') {
      const after = Number(res.headers.get('retry-after'));
      return { status: 'retryable', error, ...(after > 0 ? { retryAfterMs: after * 1000 } : {}) };
    }
    return { status: 'permanent', error };
  }

  async send(batch: OutgoingMessage[]): Promise<SendResult[]> {
    return mapLimited(batch, this.o.concurrency ?? 20, (m) => this.sendOne(m));
  }

  async close(): Promise<void> {}
}
