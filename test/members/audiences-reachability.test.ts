// The reachability table: every channel status × consent × address presence per channel, for
// marketing and non-marketing messages, asserted against hei_member_reachable in SQL.
// Members are inserted with SQL (the rule must hold for any row, whoever wrote it).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApp } from '../helpers.ts';
import { insertMember, setSchema, SCHEMA, type MemberRow } from './audiences-fixtures.ts';

const ctx = await startTestApp();

const CHANNELS = ['sms', 'email', 'push'] as const;
const STATUSES = ['enabled', 'verified', 'disabled', 'hard_bounced', 'pending_review'] as const;
const CONSENTS = ['given', 'refused', 'absent'] as const;
const ADDRESS = [true, false] as const;
const CONSENT_NAME = { sms: 'sms_marketing', email: 'email_marketing', push: 'push_marketing' } as const;

interface Combo {
  channel: (typeof CHANNELS)[number];
  status: (typeof STATUSES)[number];
  consent: (typeof CONSENTS)[number];
  address: boolean;
  memberId: number;
}

/** DECISIONS.md "Channel choice" + "Marketing consent", written out independently of the SQL. */
function expected(c: Combo, marketing: boolean, schemaDefinesPushConsent: boolean): boolean {
  const statusOk = c.channel === 'push' ? c.status === 'enabled' : c.status === 'enabled' || c.status === 'verified';
  if (!c.address || !statusOk) return false;
  if (!marketing) return true;
  if (c.channel === 'push' && !schemaDefinesPushConsent) return true;
  return c.consent === 'given';
}

const combos: Combo[] = [];
let clubId = 0;

before(async () => {
  const club = await ctx.newClub();
  clubId = club.club.id;
  await setSchema(ctx.db, clubId, SCHEMA);
  let n = 0;
  for (const channel of CHANNELS) {
    for (const status of STATUSES) {
      for (const consent of CONSENTS) {
        for (const address of ADDRESS) {
          n++;
          // The other channels are fully usable: only the channel under test may decide.
          const row: MemberRow = {
            properties: {},
            consents: { sms_marketing: true, email_marketing: true, push_marketing: true },
            sms_status: 'enabled',
            email_status: 'enabled',
            push_status: 'enabled',
          };
          const other = { sms: { msisdn: `4791${String(n).padStart(6, '0')}` }, email: { email: `m${n}@example.com` } };
          row.properties = { ...other.sms, ...other.email };
          if (channel !== 'push' && !address) delete (row.properties as Record<string, unknown>)[channel === 'sms' ? 'msisdn' : 'email'];
          row.push_token = channel !== 'push' || address;
          row[`${channel}_status`] = status;
          if (consent === 'absent') delete row.consents![CONSENT_NAME[channel]];
          else row.consents![CONSENT_NAME[channel]] = consent === 'given';
          combos.push({ channel, status, consent, address, memberId: await insertMember(ctx.db, clubId, row) });
        }
      }
    }
  }
});

for (const marketing of [true, false]) {
  for (const schemaConsents of [SCHEMA.consents, { sms_marketing: {}, email_marketing: {} }]) {
    const definesPush = 'push_marketing' in schemaConsents;
    test(`reachability table: marketing=${marketing}, push_marketing ${definesPush ? 'defined' : 'not defined'} in the club schema`, async () => {
      for (const channel of CHANNELS) {
        const { rows } = await ctx.db.query<{ id: number; reachable: boolean | null }>(
          `SELECT m.id, hei_member_reachable(m, $2, $3, $4::jsonb) AS reachable FROM members m WHERE m.loyalty_club_id = $1`,
          [clubId, channel, marketing, JSON.stringify(schemaConsents)],
        );
        const got = new Map(rows.map((r) => [r.id, r.reachable]));
        const mine = combos.filter((c) => c.channel === channel);
        assert.equal(mine.length, STATUSES.length * CONSENTS.length * ADDRESS.length);
        for (const c of mine) {
          assert.equal(got.get(c.memberId), expected(c, marketing, definesPush), `${JSON.stringify({ ...c, marketing, definesPush })}`);
        }
        // Members set up for another channel are reachable here unless their own channel is the one broken.
        for (const r of rows) assert.notEqual(r.reachable, null);
      }
    });
  }
}

test('reachability: an unknown channel is never reachable', async () => {
  const { rows } = await ctx.db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM members m WHERE m.loyalty_club_id = $1 AND hei_member_reachable(m, 'fax', false, '{}'::jsonb)`,
    [clubId],
  );
  assert.equal(rows[0].n, 0);
});

test('reachability: has_push_token follows the push tokens', async () => {
  const memberId = await insertMember(ctx.db, clubId, { push_status: 'enabled' });
  const reachable = async () =>
    (await ctx.db.query<{ r: boolean }>(`SELECT hei_member_reachable(m, 'push', false, '{}'::jsonb) AS r FROM members m WHERE id = $1`, [memberId])).rows[0].r;
  assert.equal(await reachable(), false);
  await ctx.db.query(`INSERT INTO member_push_tokens (member_id, token) VALUES ($1, 'a'), ($1, 'b')`, [memberId]);
  assert.equal(await reachable(), true);
  await ctx.db.query(`DELETE FROM member_push_tokens WHERE member_id = $1 AND token = 'a'`, [memberId]);
  assert.equal(await reachable(), true);
  await ctx.db.query(`DELETE FROM member_push_tokens WHERE member_id = $1`, [memberId]);
  assert.equal(await reachable(), false);
});

test('reachability: usable in a set-based statement next to compiled conditions', async () => {
  // The delivery engine's shape: conditions + reachability in one WHERE.
  const { rows } = await ctx.db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM members m
      WHERE m.loyalty_club_id = $1 AND m.sms_status = 'verified' AND hei_member_reachable(m, 'sms', true, $2::jsonb)`,
    [clubId, JSON.stringify(SCHEMA.consents)],
  );
  // sms rows with status verified: consent given × address present = 1; plus the 60 members
  // configured for email / push, whose sms_status is enabled — not verified.
  assert.equal(rows[0].n, 1);
});
