// Shared by the delivery tests: an app whose outbox lives in a temporary folder, members made in
// bulk with SQL, messages and sendings through the API, and waiting on the engine.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Queryable } from '../../src/db/connection.ts';
import { deliveryEngineOf, type DeliveryEngine } from '../../src/delivery/index.ts';
import { outboxPath, readOutbox } from '../../src/transports/outbox.ts';
import type { TransportResolver } from '../../src/transports/registry.ts';
import type { OutgoingMessage, SendResult, Transport } from '../../src/transports/transport.ts';
import { startTestApp, type StartOptions, type TestClub, type TestContext } from '../helpers.ts';

export interface DeliveryContext extends TestContext {
  dataDir: string;
  engine: DeliveryEngine;
  outbox(): ReturnType<typeof readOutbox>;
  /** A club whose sendings only this test's engine works on. */
  club(): Promise<TestClub>;
}

export async function startDeliveryApp(opts: { shortenerBaseUrl?: string } & Pick<StartOptions, 'wrapDb' | 'logger'> = {}): Promise<DeliveryContext> {
  const dataDir = mkdtempSync(join(tmpdir(), 'hei-delivery-'));
  const ctx = await startTestApp({
    config: { dataDir, ...(opts.shortenerBaseUrl ? { shortenerBaseUrl: opts.shortenerBaseUrl } : {}) },
    wrapDb: opts.wrapDb,
    logger: opts.logger,
  });
  const engine = deliveryEngineOf(ctx.app.hei);
  // The test harness closes the app, then the database: the background jobs a test started
  // must stop first, or they keep the test process alive.
  const close = ctx.app.close.bind(ctx.app);
  (ctx.app as any).close = async () => {
    await ctx.app.hei.worker.stop();
    return close();
  };
  // Several test files share one PostgreSQL database: this engine only touches its own clubs.
  engine.settings.clubIds = [];
  engine.settings.pollMs = 50;
  const club = async () => {
    const c = await ctx.newClub();
    engine.settings.clubIds!.push(c.club.id);
    await ctx.db.query(`UPDATE loyalty_clubs SET member_schema = $2 WHERE id = $1`, [c.club.id, JSON.stringify(SCHEMA)]);
    return c;
  };
  return { ...ctx, dataDir, engine, outbox: () => readOutbox(outboxPath(dataDir)), club };
}

export const SCHEMA = {
  identifiers: ['email', 'msisdn'],
  consents: { sms_marketing: {}, email_marketing: {}, push_marketing: {} },
  properties: {
    email: { type: 'string', format: 'email' },
    msisdn: { type: 'string', format: 'msisdn' },
    first_name: { type: 'string' },
    city: { type: 'string' },
    age: { type: 'integer' },
  },
  required: [],
};

export interface MemberSpec {
  first_name?: string;
  email?: string | null;
  msisdn?: string | null;
  city?: string;
  sms_status?: string;
  email_status?: string;
  push_status?: string;
  consents?: string[];
  push_token?: string;
}

/** Inserts members directly (the members API is another issue's); returns their ids in order. */
export async function insertMembers(db: Queryable, clubId: number, specs: MemberSpec[]): Promise<number[]> {
  const { rows } = await db.query<{ id: number }>(
    `INSERT INTO members (loyalty_club_id, properties, consents, sms_status, email_status, push_status)
     SELECT $1, x->'properties', x->'consents', x->>'sms_status', x->>'email_status', x->>'push_status'
       FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS t(x, n) ORDER BY n
     RETURNING id`,
    [
      clubId,
      JSON.stringify(
        specs.map((s) => ({
          properties: Object.fromEntries(
            Object.entries({ first_name: s.first_name, email: s.email, msisdn: s.msisdn, city: s.city }).filter(([, v]) => v !== undefined && v !== null),
          ),
          consents: Object.fromEntries((s.consents ?? []).map((c) => [c, { status: true, updated_at: new Date().toISOString() }])),
          sms_status: s.sms_status ?? 'enabled',
          email_status: s.email_status ?? 'enabled',
          push_status: s.push_status ?? 'enabled',
        })),
      ),
    ],
  );
  const ids = rows.map((r) => r.id).sort((a, b) => a - b);
  for (let i = 0; i < specs.length; i++) {
    if (specs[i].push_token) await db.query('INSERT INTO member_push_tokens (member_id, token, platform) VALUES ($1, $2, $3)', [ids[i], specs[i].push_token, 'ios']);
  }
  return ids;
}

/** `count` reachable SMS members m0…m{count-1} with the SMS marketing consent. */
export async function insertSmsMembers(db: Queryable, clubId: number, count: number, city = 'Oslo'): Promise<void> {
  await db.query(
    `INSERT INTO members (loyalty_club_id, properties, consents)
     SELECT $1, jsonb_build_object('first_name', 'm' || i, 'msisdn', (4790000000 + i)::text, 'city', $3::text),
            '{"sms_marketing": {"status": true}}'::jsonb
       FROM generate_series(0, $2 - 1) AS i`,
    [clubId, count, city],
  );
}

export const SMS_CHANNEL = (body = 'Hei {{first_name}}') => ({
  type: 'sms',
  sender: { type: 'alphanumeric', value: 'Infinity' },
  template: { type: 'inline', definition: { type: 'plain', content: { body } } },
});
export const EMAIL_CHANNEL = (body = '<p>Hei {{first_name}}</p>') => ({
  type: 'email',
  from_email: 'news@example.com',
  from_name: 'Example',
  template: { type: 'inline', definition: { type: 'email', content: { subject: 'Hello {{first_name}}', body } } },
});
export const PUSH_CHANNEL = (body = 'Hei {{first_name}}') => ({
  type: 'push',
  template: { type: 'inline', definition: { type: 'push', content: { subject: 'News', body } } },
});

/** Creates a message (with its first sending) through the API; returns { messageId, sendingId }. */
export async function createMessage(c: TestClub, service: string, message: Record<string, unknown>): Promise<{ messageId: number; sendingId: number | null }> {
  const res = await c.request('POST', `/v1/messages/${service}`, { body: { message: { name: 'Delivery test', ...message } } });
  assert.ok(res.status === 200 || res.status === 201, res.text);
  return { messageId: res.body.message.id, sendingId: res.body.message.latest_sending?.id ?? null };
}

export async function showSending(c: TestClub, service: string, id: number): Promise<any> {
  const res = await c.request('GET', `/v1/messages/${service}/sendings/${id}`);
  assert.equal(res.status, 200, res.text);
  return res.body.sending;
}

export async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 20_000, everyMs = 25): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as T;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function dispatchesOf(db: Queryable, sendingId: number): Promise<any[]> {
  return (await db.query('SELECT * FROM dispatches WHERE sending_id = $1 ORDER BY id', [sendingId])).rows;
}

/** A transport whose answers and timing the test decides; remembers every call. */
export class ScriptedTransport implements Transport {
  readonly name = 'scripted';
  readonly calls: Array<{ startedAt: number; ids: number[] }> = [];
  constructor(
    private readonly answer: (m: OutgoingMessage, attempt: number) => SendResult = (m) => ({ status: 'sent', providerId: `p-${m.dispatchId}` }),
    public hold: (() => Promise<void>) | null = null,
  ) {}
  private readonly seen = new Map<number, number>();
  async send(batch: OutgoingMessage[]): Promise<SendResult[]> {
    this.calls.push({ startedAt: Date.now(), ids: batch.map((m) => m.dispatchId) });
    if (this.hold) await this.hold();
    return batch.map((m) => {
      const n = (this.seen.get(m.dispatchId) ?? 0) + 1;
      this.seen.set(m.dispatchId, n);
      return this.answer(m, n);
    });
  }
  async close(): Promise<void> {}
  get sentIds(): number[] {
    return this.calls.flatMap((c) => c.ids);
  }
}

export function only(transport: Transport): TransportResolver {
  return { resolveTransport: async () => transport, close: async () => {} };
}
