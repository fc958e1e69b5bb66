// Web Push (RFC 8030/8291/8292): `web-push` builds the VAPID headers and the aes128gcm-encrypted
// body; we post it with fetch (keep-alive, any scheme) and map the push service's answer.
import webpush from 'web-push';
import type { OutgoingMessage, PushContent, SendResult, Transport } from './transport.ts';

export interface WebPushOptions {
  /** mailto: or https: contact of the sender, required by VAPID. */
  subject: string;
  publicKey: string;
  privateKey: string;
  /** Seconds the push service keeps an undelivered message. */
  ttl?: number;
  concurrency?: number;
  timeoutMs?: number;
}

interface Subscription {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

/** A member's push token for Web Push is the browser's PushSubscription as JSON. */
export function parseSubscription(token: string | null | undefined): Subscription | null {
  try {
    const s = JSON.parse(token ?? '');
    return typeof s?.endpoint === 'string' && s.keys?.p256dh && s.keys?.auth ? s : null;
  } catch {
    return null;
  }
}

export const pushPayload = (c: PushContent) =>
  JSON.stringify({ title: c.title, body: c.body, image: c.image ?? null, url: c.url ?? null, data: c.data ?? {} });

export class WebPushTransport implements Transport {
  readonly name = 'webpush';
  constructor(private o: WebPushOptions) {}

  private async sendOne(m: OutgoingMessage, signal?: AbortSignal): Promise<SendResult> {
    const sub = parseSubscription(m.recipient.pushToken);
    if (m.content.kind !== 'push' || !sub) return { status: 'permanent', error: 'not a Web Push subscription' };
    let details;
    try {
      details = webpush.generateRequestDetails(sub, pushPayload(m.content), {
        vapidDetails: { subject: this.o.subject, publicKey: this.o.publicKey, privateKey: this.o.privateKey },
        TTL: this.o.ttl ?? 86_400,
        contentEncoding: 'aes128gcm',
      });
    } catch (err) {
      return { status: 'permanent', error: `cannot encrypt for this subscription: ${(err as Error).message}` };
    }
    let res: Response;
    try {
      const timeout = AbortSignal.timeout(this.o.timeoutMs ?? 15_000);
      res = await fetch(details.endpoint, {
        method: 'POST',
        headers: details.headers as Record<string, string>,
        body: new Uint8Array(details.body as Buffer),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
    } catch (err) {
      return { status: 'retryable', error: `push service unreachable: ${(err as Error).message}` };
    }
    const text = (await res.text().catch(() => '')).slice(0, 200);
    if (res.ok) return { status: 'sent', providerId: res.headers.get('location') ?? `webpush-${m.dispatchId}` };
    const error = `push service HTTP ${res.status}${text ? `: ${text}` : ''}`;
    // The subscription expired or was withdrawn: the engine removes the member's token.
    if (res.status === 404 || res.status === 410) return { status: 'permanent', error, gone: true };
    if (res.status === 429 || res.status >= 500) {
      const after = Number(res.headers.get('retry-after'));
      return { status: 'retryable', error, ...(after > 0 ? { retryAfterMs: after * 1000 } : {}) };
    }
    return { status: 'permanent', error };
  }

  async send(batch: OutgoingMessage[], signal?: AbortSignal): Promise<SendResult[]> {
    return mapLimited(batch, this.o.concurrency ?? 20, (m) => this.sendOne(m, signal));
  }

  async close(): Promise<void> {}
}

export async function mapLimited<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return out;
}
