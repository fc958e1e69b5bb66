// SMS over SMPP 3.4 (the `smpp` package): one bound transceiver per transport, a window of
// outstanding submit_sm, enquire_link keep-alive, reconnect with backoff, delivery receipts.
import smpp from 'smpp';
import type { DeliveryReport, DeliveryReportSink, OutgoingMessage, SendResult, SmsContent, Transport, TransportOutage } from './transport.ts';
import { smsPdus } from './sms-encoding.ts';

export interface SmppOptions {
  host: string;
  port: number;
  systemId: string;
  password: string;
  systemType?: string;
  tls?: boolean;
  /** With tls: trusted CA certificates (PEM) instead of Node's defaults (the URL's `ca` adds to them). */
  ca?: string[];
  /** Outstanding submit_sm at most. */
  window?: number;
  enquireLinkMs?: number;
  responseTimeoutMs?: number;
  /** How long send() waits for a bind before answering `retryable`. */
  connectTimeoutMs?: number;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  onReports?: DeliveryReportSink;
}

// Throttling says "not yet" (the engine waits without using an attempt); the others are errors
// worth another attempt.
const THROTTLE_STATUS = new Set([0x58 /* THROTTLED */, 0x14 /* MSGQFUL */]);
const RETRYABLE_STATUS = new Set([...THROTTLE_STATUS, 0x08 /* SYSERR */, 0x45 /* SUBMITFAIL */]);

interface Pending {
  deadline: number;
  done: (r: { ok: true; id: string } | { ok: false; retryable: boolean; error: string; waitMs?: number; outage?: TransportOutage }) => void;
}
type PartResult = Parameters<Pending['done']>[0];

export class SmppTransport implements Transport {
  readonly name: string;
  private session: any = null;
  private bound = false;
  private closed = false;
  private attempts = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private boundWaiters: (() => void)[] = [];
  private pending = new Map<number, Pending>();
  private slotWaiters: (() => void)[] = [];
  private ref = Math.floor(Math.random() * 256);
  private timer: NodeJS.Timeout;
  private lastPong = Date.now();
  /** Receipts of later parts of a long SMS are reported on the first part's id (our providerId). */
  private partOf = new Map<string, Promise<string | null>>();
  private readonly o: Required<Omit<SmppOptions, 'systemType' | 'tls' | 'ca' | 'onReports'>> & SmppOptions;

  constructor(opts: SmppOptions) {
    this.o = { window: 100, enquireLinkMs: 30_000, responseTimeoutMs: 30_000, connectTimeoutMs: 3000, reconnectMinMs: 250, reconnectMaxMs: 30_000, ...opts };
    this.name = `smpp:${opts.host}:${opts.port}`;
    this.connect();
    // One timer for keep-alive and response timeouts, instead of one per PDU.
    this.timer = setInterval(() => this.tick(), Math.min(1000, this.o.enquireLinkMs));
    this.timer.unref();
  }

  get isBound(): boolean {
    return this.bound;
  }

  private connect(): void {
    if (this.closed) return;
    const session = smpp.connect({ host: this.o.host, port: this.o.port, tls: this.o.tls, ...(this.o.tls && this.o.ca ? { ca: this.o.ca } : {}) });
    this.session = session;
    session.on('connect', () => {
      // Small PDUs must not wait for Nagle; writes of one tick are coalesced by cork() instead.
      session.socket.setNoDelay(true);
      session.bind_transceiver({ system_id: this.o.systemId, password: this.o.password, system_type: this.o.systemType ?? '' }, (pdu: any) => {
        if (pdu.command_status !== 0) return session.destroy(); // wrong credentials: retried with backoff
        this.bound = true;
        this.attempts = 0;
        this.lastPong = Date.now();
        this.boundWaiters.splice(0).forEach((f) => f());
      });
    });
    session.on('deliver_sm', (pdu: any) => {
      session.send(pdu.response());
      this.receipt(pdu);
    });
    session.on('enquire_link', (pdu: any) => session.send(pdu.response()));
    session.on('enquire_link_resp', () => (this.lastPong = Date.now()));
    session.on('unbind', (pdu: any) => {
      session.send(pdu.response());
      session.close();
    });
    session.on('error', () => {}); // followed by 'close'
    session.on('close', () => this.down(session));
  }

  private down(session: any): void {
    if (session !== this.session) return;
    this.bound = false;
    this.session = null;
    for (const p of this.pending.values()) p.done({ ok: false, retryable: true, error: 'SMPP connection lost', outage: 'down' });
    this.pending.clear();
    this.slotWaiters.splice(0).forEach((f) => f());
    if (this.closed) return;
    const delay = Math.min(this.o.reconnectMaxMs, this.o.reconnectMinMs * 2 ** Math.min(this.attempts++, 20));
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  private tick(): void {
    const now = Date.now();
    for (const [seq, p] of this.pending) {
      if (p.deadline < now) {
        this.pending.delete(seq);
        p.done({ ok: false, retryable: true, error: 'SMPP response timeout' });
      }
    }
    if (!this.bound || !this.session) return;
    if (now - this.lastPong > this.o.enquireLinkMs * 3) return void this.session.destroy(); // dead peer
    if (now - this.lastPong >= this.o.enquireLinkMs) this.session.enquire_link();
  }

  private waitBound(ms: number): Promise<boolean> {
    if (this.bound) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(this.bound), ms);
      this.boundWaiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  private async submit(fields: Record<string, unknown>, onId?: (id: string) => void): Promise<PartResult> {
    while (this.bound && this.pending.size >= this.o.window) await new Promise<void>((r) => this.slotWaiters.push(r));
    if (!this.bound || !this.session) return { ok: false, retryable: true, error: 'SMPP connection down', waitMs: this.o.reconnectMinMs, outage: 'down' };
    return new Promise((resolve) => {
      const pdu = new smpp.PDU('submit_sm', fields);
      const entry: Pending = {
        deadline: Date.now() + this.o.responseTimeoutMs,
        done: (r) => {
          resolve(r);
          this.slotWaiters.shift()?.();
        },
      };
      this.cork();
      const written = this.session.send(pdu, (resp: any) => {
        if (!this.pending.delete(pdu.sequence_number)) return; // timed out already
        const status = resp.command_status;
        if (status === 0) {
          onId?.(String(resp.message_id)); // before any receipt for this id can be handled
          entry.done({ ok: true, id: String(resp.message_id) });
        }
        else
          entry.done({
            ok: false,
            retryable: RETRYABLE_STATUS.has(status),
            error: `SMPP status 0x${status.toString(16).padStart(2, '0')}`,
            ...(THROTTLE_STATUS.has(status) ? { waitMs: 1000, outage: 'throttled' as const } : {}),
          });
      });
      if (written) this.pending.set(pdu.sequence_number, entry);
      else entry.done({ ok: false, retryable: true, error: 'SMPP connection down', waitMs: this.o.reconnectMinMs, outage: 'down' });
    });
  }

  private corked: any = null;
  private cork(): void {
    const socket = this.session?.socket;
    if (!socket || this.corked === socket) return;
    socket.cork();
    this.corked = socket;
    process.nextTick(() => {
      this.corked = null;
      socket.uncork();
    });
  }

  private async sendOne(m: OutgoingMessage): Promise<SendResult> {
    const c = m.content as SmsContent;
    if (c.kind !== 'sms' || !m.recipient.msisdn) return { status: 'permanent', error: 'not an SMS with an MSISDN' };
    const alpha = c.from.type === 'alphanumeric';
    this.ref = (this.ref + 1) & 0xff;
    const { pdus } = smsPdus(c.text, this.ref);
    const base = {
      source_addr_ton: alpha ? 5 : 1,
      source_addr_npi: alpha ? 0 : 1,
      source_addr: alpha ? c.from.value : c.from.value.replace(/^\+/, ''),
      dest_addr_ton: 1,
      dest_addr_npi: 1,
      destination_addr: m.recipient.msisdn.replace(/^\+/, ''),
      registered_delivery: 1,
    };
    let parts: PartResult[];
    if (pdus.length === 1) {
      const p = pdus[0];
      parts = [await this.submit({ ...base, esm_class: p.esmClass, data_coding: p.dataCoding, short_message: p.shortMessage })];
    } else {
      // Receipts of later parts can arrive before the first part's answer: they wait for its id.
      let firstId: (id: string | null) => void = () => {};
      const first = new Promise<string | null>((r) => (firstId = r));
      parts = await Promise.all(
        pdus.map((p, i) =>
          this.submit({ ...base, esm_class: p.esmClass, data_coding: p.dataCoding, short_message: p.shortMessage }, (id) => {
            if (i === 0) firstId(id);
            else this.partOf.set(id, first);
          }),
        ),
      );
      firstId(null);
      while (this.partOf.size > 100_000) this.partOf.delete(this.partOf.keys().next().value!);
    }
    const failed = parts.find((p) => !p.ok);
    if (failed && !failed.ok) {
      if (!failed.retryable) return { status: 'permanent', error: failed.error };
      return {
        status: 'retryable',
        error: failed.error,
        ...(failed.waitMs !== undefined ? { retryAfterMs: failed.waitMs } : {}),
        ...(failed.outage ? { outage: failed.outage } : {}),
      };
    }
    return { status: 'sent', providerId: (parts[0] as { id: string }).id, segments: pdus.length };
  }

  async send(batch: OutgoingMessage[]): Promise<SendResult[]> {
    if (!(await this.waitBound(this.o.connectTimeoutMs))) {
      const retryAfterMs = Math.min(this.o.reconnectMaxMs, this.o.reconnectMinMs * 2 ** this.attempts);
      return batch.map(() => ({ status: 'retryable', error: 'SMPP connection down', retryAfterMs, outage: 'down' }));
    }
    return Promise.all(batch.map((m) => this.sendOne(m).catch((e) => ({ status: 'retryable' as const, error: String(e?.message ?? e) }))));
  }

  private receipt(pdu: any): void {
    if (!this.o.onReports || !(pdu.esm_class & 0x04)) return; // mobile-originated text: not handled
    const report = parseReceipt(pdu);
    if (!report) return;
    const main = this.partOf.get(report.providerId);
    const sink = this.o.onReports;
    void (async () => {
      if (main) report.providerId = (await main) ?? report.providerId;
      await sink([report]);
    })().catch(() => {});
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const s = this.session;
    if (!s) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => s.destroy(), 1000);
      s.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      if (this.bound) s.unbind(() => s.close());
      else s.destroy();
    });
  }
}

const STATES: Record<string, DeliveryReport['status'] | null> = {
  DELIVRD: 'delivered',
  UNDELIV: 'undeliverable',
  REJECTD: 'failed',
  EXPIRED: 'failed',
  DELETED: 'failed',
  UNKNOWN: 'failed',
  ACCEPTD: null,
  ENROUTE: null,
};

/** The receipt text of SMPP 3.4 appendix B ("id:… stat:DELIVRD err:000 …"), TLVs preferred. */
export function parseReceipt(pdu: any): DeliveryReport | null {
  const sm = pdu.short_message;
  const text = typeof sm === 'string' ? sm : Buffer.isBuffer(sm) ? sm.toString('latin1') : String(sm?.message ?? '');
  const id = pdu.receipted_message_id ?? /\bid:(\S+)/i.exec(text)?.[1];
  const stat = /\bstat:(\w+)/i.exec(text)?.[1]?.toUpperCase();
  if (!id || !stat || !(stat in STATES)) return null;
  const status = STATES[stat];
  if (!status) return null;
  const err = /\berr:(\w+)/i.exec(text)?.[1];
  const done = /\bdone date:(\d{10,12})/i.exec(text)?.[1];
  let at = new Date();
  if (done) {
    const [yy, mo, dd, hh, mi, ss] = done.match(/\d\d/g)!.map(Number);
    at = new Date(Date.UTC(2000 + yy, mo - 1, dd, hh, mi, ss ?? 0));
  }
  return { providerId: String(id), status, at, error: status === 'delivered' ? null : `${stat}${err ? ` err:${err}` : ''}` };
}
