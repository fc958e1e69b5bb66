// The one interface between the delivery engine and every protocol adapter.
// An adapter turns a batch of rendered messages into per-item outcomes; it never touches the
// database. Delivery receipts come back through a sink the engine provides.

export type Channel = 'sms' | 'email' | 'push';

export interface SmsContent {
  kind: 'sms';
  /** Alphanumeric (TON 5, 2–11 characters) or international MSISDN (TON 1, digits). */
  from: { type: 'alphanumeric' | 'international'; value: string };
  text: string;
}

export interface EmailContent {
  kind: 'email';
  from: { email: string; name?: string | null };
  subject: string;
  html: string;
  text: string;
  preheader?: string | null;
  /** Set for marketing messages: List-Unsubscribe / List-Unsubscribe-Post (one-click). */
  unsubscribeUrl?: string | null;
}

export interface PushContent {
  kind: 'push';
  title: string;
  body: string;
  image?: string | null;
  url?: string | null;
  data?: Record<string, string> | null;
}

export interface OutgoingMessage {
  /** Unique per (sending, recipient): adapters derive provider-side ids from it (e.g. Message-ID). */
  dispatchId: number;
  sendingId: number;
  channel: Channel;
  marketing: boolean;
  recipient: { memberId?: number | null; msisdn?: string | null; email?: string | null; pushToken?: string | null };
  content: SmsContent | EmailContent | PushContent;
}

/** Why a transport cannot take messages: unreachable, asking us to slow down, or out of disk space. */
export type TransportOutage = 'down' | 'throttled' | 'disk_full';

export type SendResult =
  | { status: 'sent'; providerId: string; /** SMS parts billed */ segments?: number }
  /**
   * Worth trying again later: throttling, connection down, 4xx SMTP, 5xx HTTP. `outage` says the
   * provider itself cannot take messages now (not this message): the engine backs the transport
   * off and the attempt is not used up (DECISIONS "Faults").
   */
  | { status: 'retryable'; error: string; retryAfterMs?: number; outage?: TransportOutage }
  /**
   * Will never succeed. `gone` says the address itself is dead (hard bounce, unregistered push
   * token) so the engine can update the member.
   */
  | { status: 'permanent'; error: string; gone?: boolean };

export interface Transport {
  readonly name: string;
  /** One result per message, in the same order. Must not throw for a single bad message. */
  send(batch: OutgoingMessage[], signal?: AbortSignal): Promise<SendResult[]>;
  close(): Promise<void>;
}

/** A provider's later word on a message it accepted (SMPP deliver_sm, HTTP gateway callback…). */
export interface DeliveryReport {
  providerId: string;
  status: 'delivered' | 'failed' | 'undeliverable';
  at: Date;
  error?: string | null;
}

export type DeliveryReportSink = (reports: DeliveryReport[]) => Promise<void>;
