// Shared by the members tests: a club with the demo schema, and member bodies.
import assert from 'node:assert/strict';
import type { TestClub, TestContext } from '../helpers.ts';
import { demoMemberSchema } from '../../src/members/schema.ts';

export const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** A new club whose schema is the demo one (first_name required, interests, consents…). */
export async function clubWithDemoSchema(ctx: TestContext): Promise<TestClub & { base: string }> {
  const c = await ctx.newClub();
  await ctx.db.query('UPDATE loyalty_clubs SET member_schema = $2 WHERE id = $1', [c.club.id, demoMemberSchema(['en', 'no'], 'en')]);
  return Object.assign(c, { base: `/v3/${c.club.slug}` });
}

/** The member without its server-chosen values (id, timestamps, person_id — checked to be a positive integer). */
export function stable(member: Record<string, any>): Record<string, any> {
  const { id: _id, created_at: _c, updated_at: _u, person_id, ...rest } = member;
  assert.ok(Number.isSafeInteger(person_id) && person_id > 0, `person_id ${person_id}`);
  const consents = Object.fromEntries(Object.entries(rest.consents ?? {}).map(([k, v]: [string, any]) => [k, { status: v.status }]));
  return { ...rest, consents };
}

export const DEFAULTS = {
  consents: {},
  sms_status: 'enabled',
  email_status: 'enabled',
  push_status: 'enabled',
  optin_channel: 'test-suite',
  optin_subchannel: null,
  banned_until: null,
  has_password: false,
  subunit_ids: [],
  has_push_token: false,
  social_logins: [],
  favorite_stores: [],
  group_ids: [],
};
