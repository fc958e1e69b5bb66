// `npm run bench -- webhooks [--updates=N] [--members=M]`: N (default 100,000) member updates
// queued for one v2 subscription (through the real outbox writer, in transactions of 1000), then
// delivered by the delivery job to a loopback HTTP receiver until the queue is empty: events per
// second, POSTs made. Beside it, in the same run, a bare loop POSTing the same batches (bodies
// built beforehand, same keep-alive transport, no database) to the same receiver.
// Needs PostgreSQL: DATABASE_URL, else postgres://postgres@127.0.0.1:5432/hei_bench (created).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { benchDatabase, fmt, table } from './common.ts';
import { createClub } from '../src/platform/clubs.ts';
import { createSubscription, deliverDueEvents, BATCH_SIZE, type WebhookSettings } from '../src/members/webhooks.ts';
import { batchBody } from '../src/members/webhook-payloads.ts';
import { enqueueMemberEvents } from '../src/members/webhooks.ts';
import type { Member } from '../src/members/member-input.ts';

function arg(args: string[], name: string, dflt: number): number {
  const given = args.find((a) => a.startsWith(`--${name}=`));
  const value = given ? Number(given.slice(name.length + 3)) : dflt;
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
  return value;
}

const member = (id: number, n: number): Member => ({
  id,
  properties: { email: `m${id}@bench.example.com`, msisdn: String(4790000000 + id), first_name: `Name ${n}`, language: 'no' },
  consents: { sms_marketing: { status: n % 2 === 0, updated_at: '2026-01-01T00:00:00.000Z' } },
  sms_status: 'enabled', email_status: 'enabled', push_status: 'enabled', optin_channel: 'bench', optin_subchannel: null,
  created_at: '2026-01-01T00:00:00.000Z', updated_at: new Date().toISOString(), banned_until: null, person_id: id,
  has_password: false, subunit_ids: [], has_push_token: false, social_logins: [], favorite_stores: [], group_ids: [],
});

export async function main(args: string[]): Promise<void> {
  const updates = arg(args, 'updates', 100_000);
  const members = arg(args, 'members', 1_000);
  const { db } = await benchDatabase('hei_bench');

  let posts = 0;
  let events = 0;
  const receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      posts++;
      events += JSON.parse(Buffer.concat(chunks).toString('utf8')).events.length;
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  const settings: WebhookSettings = { allowPrivateTargets: true };

  try {
    const slug = 'bench-webhooks';
    await db.query('DELETE FROM loyalty_clubs WHERE slug = $1', [slug]);
    const club = await createClub(db, { slug, name: slug });
    const sub = await createSubscription(db, club.id, { url, event_schema_version: 2 }, settings);

    // 1. Queue the updates through the outbox writer (each member changes its first name).
    let started = performance.now();
    for (let done = 0; done < updates; done += 1000) {
      const n = Math.min(1000, updates - done);
      await db.transaction(async (tx) => {
        const changes = Array.from({ length: n }, (_, i) => {
          const id = 1 + ((done + i) % members);
          return { before: member(id, done + i), after: member(id, done + i + 1) };
        });
        await enqueueMemberEvents(tx, club.id, 'update', changes, 'bench', new Date().toISOString());
      });
    }
    const queueSeconds = (performance.now() - started) / 1000;

    // 2. Bare baseline: the same batches (bodies read once, beforehand), POSTed one after the other.
    const { rows } = await db.query<{ payload: string }>('SELECT payload::text AS payload FROM members_webhook_events WHERE subscription_id = $1 ORDER BY id', [sub.id]);
    const bodies: string[] = [];
    for (let i = 0; i < rows.length; i += BATCH_SIZE) bodies.push(batchBody(2, rows.slice(i, i + BATCH_SIZE).map((r) => r.payload)));
    const agent = new http.Agent({ keepAlive: true });
    posts = 0;
    events = 0;
    started = performance.now();
    for (const body of bodies) {
      await new Promise<void>((resolve, reject) => {
        const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
          res.resume();
          res.on('end', resolve);
        });
        req.on('error', reject);
        req.end(body);
      });
    }
    const bareSeconds = (performance.now() - started) / 1000;
    const bare = { posts, events };
    agent.destroy();

    // 3. Hei: the delivery job, run back to back as the worker does while it finds work.
    posts = 0;
    events = 0;
    started = performance.now();
    while ((await deliverDueEvents(db, settings)) > 0) {
      // next batch
    }
    const heiSeconds = (performance.now() - started) / 1000;
    const left = (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM members_webhook_events WHERE subscription_id = $1 AND status <> 'delivered'`, [sub.id])).rows[0].n;
    if (events !== updates || left !== 0) throw new Error(`delivered ${events} of ${updates} events, ${left} not delivered`);

    process.stdout.write(`\nwebhooks: ${fmt(updates)} member updates (${fmt(members)} members), one v2 subscription, loopback receiver\n`);
    process.stdout.write(`queueing (outbox writes, 1000 per transaction): ${fmt(queueSeconds, 1)} s, ${fmt(updates / queueSeconds)} events/s\n\n`);
    table([
      { run: 'bare loop (same batches)', seconds: fmt(bareSeconds, 2), 'events/s': fmt(bare.events / bareSeconds), POSTs: fmt(bare.posts), 'POSTs per 100 events': fmt((100 * bare.posts) / bare.events, 2) },
      { run: 'Hei delivery job', seconds: fmt(heiSeconds, 2), 'events/s': fmt(events / heiSeconds), POSTs: fmt(posts), 'POSTs per 100 events': fmt((100 * posts) / events, 2) },
    ]);
    process.stdout.write(`\nratio Hei / bare: ${fmt(bareSeconds / heiSeconds, 2)}× (target ≥ 0.7×; ≤ 1 POST per 100 events)\n`);
    await db.query('DELETE FROM loyalty_clubs WHERE slug = $1', [slug]);
  } finally {
    receiver.closeAllConnections();
    receiver.close();
    await db.close();
  }
}
