// `kill -9` of `npm start` (hei serve on the embedded store) three times during a 20,000-member SMS
// sending: the data folder reopens every time, every member gets the SMS, and what goes out twice
// is at most what was in flight — the groups handed over and not yet recorded — and counted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../src/app.ts';
import { openPglite } from '../src/db/connection.ts';
import { migrate } from '../src/db/migrate.ts';
import { loadConfig } from '../src/platform/config.ts';
import { createClub } from '../src/platform/clubs.ts';
import { allPermits } from '../src/platform/permits.ts';
import { createClientToken } from '../src/platform/tokens.ts';
import { RECORD_GROUP } from '../src/delivery/transmit.ts';
import { loadDeliverySettings } from '../src/delivery/config.ts';
import { DEMO_MESSAGING_SETTINGS } from '../src/seed.ts';
import { SCHEMA, SMS_CHANNEL, insertSmsMembers, waitFor } from '../test/delivery/helpers.ts';
import { freePort } from './cluster.ts';
import { assertDelivered, spawnHei, type HeiProcess } from './support.ts';

const MEMBERS = 20_000;
const WINDOW = RECORD_GROUP * loadDeliverySettings({}).concurrency;

test('kill -9 of hei serve (embedded) three times mid-sending: every member gets the SMS, repeats only what was in flight', { timeout: 600_000 }, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'hei-faults-embedded-'));
  // The club, its token and members, written before hei serve takes the data folder.
  const db = await openPglite(join(dataDir, 'pglite'));
  await migrate(db);
  const app = await buildApp({ db, config: { ...loadConfig({}), dataDir }, logger: false });
  const club = await createClub(db, { slug: 'faults', name: 'Faults', languages: ['en'], messagingSettings: DEMO_MESSAGING_SETTINGS });
  await db.query('UPDATE loyalty_clubs SET member_schema = $2 WHERE id = $1', [club.id, JSON.stringify(SCHEMA)]);
  const { token } = await createClientToken(db, { clubId: club.id, product: 'test-suite', permits: allPermits(app) });
  await insertSmsMembers(db, club.id, MEMBERS);
  await app.close();
  await db.close();

  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const headers = { 'X-User-Agent': 'fault suite', 'X-Product-Name': 'test-suite', 'X-Loyalty-Club-Slug': 'faults', 'X-Client-Authorization': token, 'Content-Type': 'application/json' };
  const start = async (): Promise<HeiProcess> => {
    const p = spawnHei(['serve', '--no-seed'], { HEI_DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: '' });
    await waitFor('hei serve listening', async () => (await fetch(`${base}/health`).catch(() => null))?.ok, 120_000, 100);
    return p;
  };
  let serve = await start();
  const res = await fetch(`${base}/v1/messages/generic`, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      message: {
        name: 'Crash test', channels: [SMS_CHANNEL()],
        sending: { schedule: { type: 'immediate' }, audience: { type: 'inline', conditions: [{ condition_group: 'member_properties', field: 'city', operator: 'match', value: 'Oslo' }] } },
      },
    }),
  });
  assert.equal(res.status, 201, await res.clone().text());
  const sendingId: number = (await res.json()).message.latest_sending.id;
  const sending = async () => {
    const r = await fetch(`${base}/v1/messages/generic/sendings/${sendingId}`, { headers }).catch(() => null);
    return r?.ok ? (await r.json()).sending : null;
  };
  let kills = 0;
  let done: any;
  try {
    for (const target of [3_000, 8_000, 13_000]) {
      await waitFor(`progress past ${target}`, async () => ((await sending())?.stats.sent ?? 0) >= target, 300_000, 20);
      serve.child.kill('SIGKILL');
      await serve.exited;
      kills++;
      serve = await start(); // the data folder reopens
    }
    done = await waitFor('transmitted', async () => {
      const s = await sending();
      return s?.status === 'transmitted' ? s : null;
    }, 300_000, 200);
  } finally {
    serve.child.kill('SIGTERM');
    await serve.exited;
  }
  const after = await openPglite(join(dataDir, 'pglite'));
  try {
    const r = await assertDelivered(after, dataDir, sendingId, MEMBERS, { kills, window: WINDOW });
    assert.equal(done.possible_duplicates, r.possibleDuplicates, 'possible_duplicates is shown on the sending');
    process.stderr.write(`  embedded kill -9 ×${kills}: ${r.repeats} repeats, ${r.possibleDuplicates} possible duplicates (bound ${kills * WINDOW})\n`);
  } finally {
    await after.close();
  }
});
