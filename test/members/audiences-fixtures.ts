// Shared by the audiences tests: a club member schema and SQL helpers to write members directly.
import type { Queryable } from '../../src/db/connection.ts';

export const SCHEMA = {
  $schema: 'http://json-schema.org/draft-04/schema#',
  type: 'object',
  identifiers: ['email', 'msisdn'],
  consents: {
    sms_marketing: { version: '', required: false, show_in_profile: true, show_at_registration: true },
    email_marketing: { version: '', required: false, show_in_profile: true, show_at_registration: true },
    push_marketing: { version: '', required: false, show_in_profile: true, show_at_registration: true },
    newsletter: { version: '', required: false, show_in_profile: true, show_at_registration: true },
  },
  languages: ['en', 'no'],
  default_language: 'en',
  properties: {
    email: { type: 'string', format: 'email' },
    msisdn: { type: 'string', format: 'msisdn' },
    first_name: { type: 'string' },
    city: { type: 'string' },
    age: { type: 'integer' },
    score: { type: 'number' },
    vip: { type: 'boolean' },
    birthday: { type: 'string', format: 'date' },
    gender: { type: 'string', enum: ['man', 'woman', 'other'] },
    interests: { type: 'array', items: { type: 'string', enum: ['bikes', 'sport', 'cars'] } },
    last_visit: { type: 'string', format: 'date-time' },
    address: { type: 'object' },
  },
  required: [],
};

export interface MemberRow {
  properties?: Record<string, unknown>;
  consents?: Record<string, boolean>;
  sms_status?: string;
  email_status?: string;
  push_status?: string;
  subunit_ids?: number[];
  favorite_stores?: number[];
  created_at?: string;
  push_token?: boolean;
}

export async function insertMember(db: Queryable, clubId: number, m: MemberRow): Promise<number> {
  const consents = Object.fromEntries(Object.entries(m.consents ?? {}).map(([k, status]) => [k, { status, updated_at: '2024-01-01T00:00:00.000Z' }]));
  const { rows } = await db.query<{ id: number }>(
    `INSERT INTO members (loyalty_club_id, properties, consents, sms_status, email_status, push_status, subunit_ids, favorite_stores, created_at)
     VALUES ($1, $2::jsonb, $3::jsonb, $4, $5, $6, $7::bigint[], $8::bigint[], COALESCE($9::timestamptz, now())) RETURNING id`,
    [clubId, JSON.stringify(m.properties ?? {}), JSON.stringify(consents), m.sms_status ?? 'enabled', m.email_status ?? 'enabled',
      m.push_status ?? 'enabled', m.subunit_ids ?? [], m.favorite_stores ?? [], m.created_at ?? null],
  );
  if (m.push_token) await db.query(`INSERT INTO member_push_tokens (member_id, token) VALUES ($1, $2)`, [rows[0].id, `token-${rows[0].id}`]);
  return rows[0].id;
}

export async function setSchema(db: Queryable, clubId: number, schema: object): Promise<void> {
  await db.query('UPDATE loyalty_clubs SET member_schema = $2::jsonb WHERE id = $1', [clubId, JSON.stringify(schema)]);
}
