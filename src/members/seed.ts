// Demo data of the members domain: the schema of infinity-mall and a handful of members.
import type { Queryable } from '../db/connection.ts';
import type { LoyaltyClub } from '../platform/context.ts';
import { demoMemberSchema, saveMemberSchema } from './schema.ts';

const DEMO_MEMBERS = [
  { first_name: 'Ola', last_name: 'Nordmann', email: 'ola.nordmann@example.com', msisdn: '4740000001', birthday: '1990-10-23', gender: 'man', language: 'no', interests: ['sportswear', 'bikes_and_cars'], consents: ['sms_marketing', 'email_marketing'], sms: 'verified' },
  { first_name: 'Kari', last_name: 'Nordmann', email: 'kari.nordmann@example.com', msisdn: '4740000002', birthday: '1988-03-14', gender: 'woman', language: 'no', interests: ['fashion', 'beauty'], consents: ['sms_marketing', 'email_marketing', 'push_marketing'], sms: 'enabled' },
  { first_name: 'Emma', last_name: 'Hansen', email: 'emma.hansen@example.com', msisdn: '4740000003', birthday: '2001-07-02', gender: 'woman', language: 'en', interests: ['food_and_drinks'], consents: ['email_marketing'], sms: 'enabled' },
  { first_name: 'Lars', last_name: 'Berg', email: 'lars.berg@example.com', msisdn: '4740000004', birthday: '1975-12-30', gender: 'man', language: 'no', interests: ['electronics', 'home_and_interior'], consents: [], sms: 'disabled' },
  { first_name: 'Sofie', last_name: 'Lie', email: 'sofie.lie@example.com', msisdn: '4740000005', birthday: '1995-05-17', gender: 'other', language: 'en', interests: ['kids', 'fashion'], consents: ['sms_marketing'], sms: 'verified' },
];

/** SEED_STEPS entry: gives the demo club its schema and members (only into an empty club). */
export async function seedMembers(db: Queryable, club: LoyaltyClub): Promise<void> {
  await saveMemberSchema(db, club.id, demoMemberSchema(club.languages, club.default_language));
  const now = new Date().toISOString();
  for (const m of DEMO_MEMBERS) {
    const { consents, sms, ...properties } = m;
    const consentMap = Object.fromEntries(['sms_marketing', 'email_marketing', 'push_marketing'].map((c) => [c, { status: consents.includes(c), updated_at: now }]));
    await db.query(
      `INSERT INTO members (loyalty_club_id, properties, consents, sms_status, optin_channel) VALUES ($1, $2, $3, $4, 'seed')`,
      [club.id, { ...properties, language: club.languages.includes(properties.language) ? properties.language : club.default_language }, consentMap, sms],
    );
  }
}
