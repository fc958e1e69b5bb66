// E-mail over SMTP through a nodemailer connection pool.
import nodemailer from 'nodemailer';
import type { EmailContent, OutgoingMessage, SendResult, Transport } from './transport.ts';

export interface SmtpOptions {
  host: string;
  port: number;
  /** smtps:// — TLS from the first byte; otherwise STARTTLS when the server offers it. */
  secure?: boolean;
  user?: string;
  password?: string;
  /** Pooled connections. */
  pool?: number;
  /** Messages per connection before it is recycled. */
  maxMessages?: number;
  /** Domain of Message-IDs; default the From address's domain. */
  messageIdDomain?: string;
  /** Refuse to send unless the server upgrades with STARTTLS. */
  requireTls?: boolean;
  /** Skip certificate checks (a local relay with a self-signed certificate). */
  insecureTls?: boolean;
  /** Trusted CA certificates (PEM) instead of Node's defaults (the URL's `ca` adds to them). */
  ca?: string[];
  timeoutMs?: number;
}

// Hard bounces: the mailbox does not exist or is not accepted — the address is dead.
const GONE_CODES = new Set([550, 551, 553]);
// nodemailer's codes for a server that cannot be reached or dropped the connection.
const OUTAGE_ERRORS = new Set(['ECONNECTION', 'ESOCKET', 'EDNS', 'ETIMEDOUT', 'ECONNREFUSED', 'ECONNRESET']);

const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/**
 * The preheader is the inbox preview line: hidden text placed first in the body, padded so
 * clients do not pull body text into the preview after it.
 */
export function withPreheader(html: string, preheader?: string | null): string {
  if (!preheader) return html;
  const block =
    `<div style="display:none;font-size:1px;line-height:1px;max-height:0;max-width:0;opacity:0;overflow:hidden;mso-hide:all">` +
    `${escapeHtml(preheader)}${'&#8199;&#65279;&#847; '.repeat(40)}</div>`;
  const m = /<body[^>]*>/i.exec(html);
  return m ? html.slice(0, m.index + m[0].length) + block + html.slice(m.index + m[0].length) : block + html;
}

export class SmtpTransport implements Transport {
  readonly name: string;
  private mailer: ReturnType<typeof nodemailer.createTransport>;

  constructor(private o: SmtpOptions) {
    this.name = `smtp:${o.host}:${o.port}`;
    this.mailer = nodemailer.createTransport({
      pool: true,
      host: o.host,
      port: o.port,
      secure: Boolean(o.secure),
      requireTLS: Boolean(o.requireTls),
      auth: o.user ? { user: o.user, pass: o.password ?? '' } : undefined,
      maxConnections: o.pool ?? 5,
      maxMessages: o.maxMessages ?? 1000,
      connectionTimeout: o.timeoutMs ?? 15_000,
      greetingTimeout: o.timeoutMs ?? 15_000,
      socketTimeout: (o.timeoutMs ?? 15_000) * 2,
      tls: o.insecureTls || o.ca ? { ...(o.insecureTls ? { rejectUnauthorized: false } : {}), ...(o.ca ? { ca: o.ca } : {}) } : undefined,
    } as any);
  }

  mail(m: OutgoingMessage): Parameters<SmtpTransport['mailer']['sendMail']>[0] {
    const c = m.content as EmailContent;
    const domain = this.o.messageIdDomain ?? c.from.email.split('@')[1] ?? 'hei.local';
    const headers: Record<string, string> = {};
    if (m.marketing && c.unsubscribeUrl) {
      headers['List-Unsubscribe'] = `<${c.unsubscribeUrl}>`;
      // RFC 8058 allows one-click only with an https URI; a plain-http link stays a link (RFC 2369).
      if (c.unsubscribeUrl.startsWith('https://')) headers['List-Unsubscribe-Post'] = 'List-Unsubscribe=One-Click';
    }
    return {
      from: c.from.name ? { name: c.from.name, address: c.from.email } : c.from.email,
      to: m.recipient.email!,
      subject: c.subject,
      html: withPreheader(c.html, c.preheader),
      text: c.text,
      // Stable per dispatch: a resend after a lost answer carries the same id, so it can be deduplicated.
      messageId: `<hei.${m.sendingId}.${m.dispatchId}@${domain}>`,
      headers,
    };
  }

  private async sendOne(m: OutgoingMessage): Promise<SendResult> {
    if (m.content.kind !== 'email' || !m.recipient.email) return { status: 'permanent', error: 'not an e-mail with an address' };
    try {
      const info = await this.mailer.sendMail(this.mail(m));
      return { status: 'sent', providerId: info.messageId };
    } catch (err: any) {
      const code: number | undefined = typeof err?.responseCode === 'number' ? err.responseCode : undefined;
      const error = String(err?.response ?? err?.message ?? err).slice(0, 300);
      if (code && code >= 500) return { status: 'permanent', error, ...(GONE_CODES.has(code) ? { gone: true } : {}) };
      // 421 (service not available) or no connection at all: the server is down, not this message.
      if (code === 421 || (!code && OUTAGE_ERRORS.has(err?.code))) return { status: 'retryable', error, outage: 'down' };
      // Other 4xx, timeouts: the server may take it later
      return { status: 'retryable', error };
    }
  }

  async send(batch: OutgoingMessage[]): Promise<SendResult[]> {
    // The pool queues beyond its connections; every message of the batch is handed over at once.
    return Promise.all(batch.map((m) => this.sendOne(m)));
  }

  async close(): Promise<void> {
    this.mailer.close();
  }
}
