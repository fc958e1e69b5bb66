// SMS through a generic JSON-over-HTTPS gateway, and the gateway's delivery-report callback
// (HMAC-SHA256 over the raw body) that hands reports to the engine's sink.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { Agent } from 'undici';
import type { DeliveryReport, DeliveryReportSink, OutgoingMessage, SendResult, SmsContent, Transport } from './transport.ts';
import { countSegments } from './sms-encoding.ts';

export interface HttpSmsOptions {
  /** Where each message is POSTed. */
  url: string;
  /** Extra request headers, e.g. { Authorization: 'Bearer …' }. */
  headers?: Record<string, string>;
  /** Our field → the gateway's JSON key (dotted for nesting). Defaults: to, from, text, reference. */
  fields?: Partial<Record<'to' | 'from' | 'text' | 'reference' | 'sender_type', string>>;
  /** Dotted path of the gateway's message id in its JSON answer. */
  responseId?: string;
  /** Requests in flight at most. */
  concurrency?: number;
  timeoutMs?: number;
  /** Trusted CA certificates (PEM) instead of Node's defaults (the URL's `ca` adds to them). */
  ca?: string[];
}

const DEFAULT_FIELDS = { to: 'to', from: 'from', text: 'text', reference: 'reference' } as const;

function setPath(obj: Record<string, any>, path: string, value: unknown): void {
  const keys = path.split('.');
  let o = obj;
  for (const k of keys.slice(0, -1)) o = o[k] ??= {};
  o[keys[keys.length - 1]] = value;
}
const getPath = (obj: any, path: string): unknown => path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);

export class HttpSmsTransport implements Transport {
  readonly name: string;
  /** Only with `ca`: fetch's connections otherwise come from the global dispatcher. */
  private dispatcher?: Agent;
  constructor(private o: HttpSmsOptions) {
    this.name = `http-sms:${new URL(o.url).host}`;
    if (o.ca) this.dispatcher = new Agent({ connect: { ca: o.ca } });
  }

  body(m: OutgoingMessage): Record<string, unknown> {
    const c = m.content as SmsContent;
    const f = { ...DEFAULT_FIELDS, ...this.o.fields };
    const body: Record<string, unknown> = {};
    setPath(body, f.to, m.recipient.msisdn);
    setPath(body, f.from, c.from.value);
    setPath(body, f.text, c.text);
    setPath(body, f.reference, String(m.dispatchId));
    if (this.o.fields?.sender_type) setPath(body, this.o.fields.sender_type, c.from.type);
    return body;
  }

  private async sendOne(m: OutgoingMessage, signal?: AbortSignal): Promise<SendResult> {
    if (m.content.kind !== 'sms' || !m.recipient.msisdn) return { status: 'permanent', error: 'not an SMS with an MSISDN' };
    let res: Response;
    try {
      const timeout = AbortSignal.timeout(this.o.timeoutMs ?? 15_000);
      res = await fetch(this.o.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json', ...this.o.headers },
        body: JSON.stringify(this.body(m)),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        ...(this.dispatcher ? { dispatcher: this.dispatcher } : {}),
      } as RequestInit);
    } catch (err) {
      // fetch says only "fetch failed"; the cause names it (refused, certificate, …)
      const cause = (err as Error).cause as Error | undefined;
      return { status: 'retryable', error: `gateway unreachable: ${(err as Error).message}${cause?.message ? ` (${cause.message})` : ''}` };
    }
    const text = await res.text().catch(() => '');
    if (res.ok) {
      let id: unknown;
      try {
        id = this.o.responseId ? getPath(JSON.parse(text), this.o.responseId) : undefined;
      } catch {
        // a gateway that answers 2xx without JSON still accepted the message
      }
      return { status: 'sent', providerId: id != null ? String(id) : `hei-${m.dispatchId}`, segments: countSegments((m.content as SmsContent).text) };
    }
    const error = `gateway HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}`;
    if (res.status === 429 || res.status === 408 || res.status >= 500) {
      const after = Number(res.headers.get('retry-after'));
      return { status: 'retryable', error, ...(after > 0 ? { retryAfterMs: after * 1000 } : {}) };
    }
    return { status: 'permanent', error };
  }

  async send(batch: OutgoingMessage[], signal?: AbortSignal): Promise<SendResult[]> {
    const results: SendResult[] = new Array(batch.length);
    let next = 0;
    const lane = async () => {
      while (next < batch.length) {
        const i = next++;
        results[i] = await this.sendOne(batch[i], signal);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.o.concurrency ?? 10, batch.length) }, lane));
    return results;
  }

  async close(): Promise<void> {
    await this.dispatcher?.close();
  }
}

// ---- inbound delivery reports ----------------------------------------------------------------

/** `sha256=<hex>` of HMAC-SHA256(secret, raw body): what the gateway must send in X-Hei-Signature. */
export function signReport(secret: string, body: string | Buffer): string {
  return 'sha256=' + createHmac('sha256', secret).update(body).digest('hex');
}

export function verifyReportSignature(secret: string, body: Buffer, header: string | undefined): boolean {
  if (!header) return false;
  const want = Buffer.from(signReport(secret, body));
  const got = Buffer.from(header.trim());
  return got.length === want.length && timingSafeEqual(got, want);
}

const REPORT_STATES: Record<string, DeliveryReport['status']> = {
  delivered: 'delivered',
  delivrd: 'delivered',
  failed: 'failed',
  rejected: 'failed',
  expired: 'failed',
  undeliverable: 'undeliverable',
  undeliv: 'undeliverable',
};

/**
 * Report bodies: `{"id": "...", "status": "delivered", "at": "ISO", "error": "..."}`, or a list of
 * them under `reports`. Unknown statuses (accepted, enroute) are intermediate and dropped.
 */
export function parseReports(json: any): DeliveryReport[] | null {
  const list = Array.isArray(json?.reports) ? json.reports : json && typeof json === 'object' ? [json] : null;
  if (!list) return null;
  const out: DeliveryReport[] = [];
  for (const r of list) {
    const id = r?.id ?? r?.message_id;
    const status = REPORT_STATES[String(r?.status ?? '').toLowerCase()];
    if (id == null || !status) continue;
    const at = r.at ? new Date(r.at) : new Date();
    out.push({ providerId: String(id), status, at: Number.isNaN(at.getTime()) ? new Date() : at, error: r.error ?? null });
  }
  return out;
}
