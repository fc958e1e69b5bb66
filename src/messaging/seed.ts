// Demo data of the Messaging domain: the Message example of messaging-api.md §5.1, reproduced
// field for field (ids and timestamps included), with the records it points to, and the sender
// identity example of §5.6.
import type { Queryable } from '../db/connection.ts';
import type { LoyaltyClub } from '../platform/context.ts';
import { ensureDefaultIdentity } from './identities.ts';

export const EXAMPLE_MESSAGE_ID = 758131;

/** Fixed ids are inserted as given; the sequences then move past them so later rows never collide. */
async function bumpSequence(db: Queryable, table: string): Promise<void> {
  await db.query(`SELECT setval(pg_get_serial_sequence('${table}', 'id'), GREATEST((SELECT max(id) FROM ${table}), 1))`);
}

export async function seedExampleMessage(db: Queryable, club: LoyaltyClub): Promise<void> {
  await ensureDefaultIdentity(db, club);
  await db.query(
    `INSERT INTO sms_sender_identities (id, loyalty_club_id, type, value, created_at, updated_at)
     VALUES (280, $1, 'alphanumeric', 'Infinity', '2022-02-21T10:39:49.155+01:00', '2022-02-21T10:40:27.208+01:00')
     ON CONFLICT DO NOTHING`,
    [club.id],
  );
  // The wrapper of the example's template: a stored `generic` template (DECISIONS "Wrappers").
  await db.query(
    `INSERT INTO message_templates (id, loyalty_club_id, standalone, name, type, content, created_at, updated_at)
     VALUES (3491, $1, true, 'SMS signature', 'generic', $2, '2020-09-01T08:00:00.000Z', '2020-09-01T08:00:00.000Z')
     ON CONFLICT DO NOTHING`,
    [club.id, JSON.stringify({ body: '{{ content }}\n-- Infinity Mall' })],
  );
  await db.query(
    `INSERT INTO audiences (id, loyalty_club_id, name, conditions, created_at, updated_at)
     VALUES (107103, $1, 'Everyone', '[]'::jsonb, '2020-09-01T08:00:00.000Z', '2020-09-01T08:00:00.000Z')
     ON CONFLICT DO NOTHING`,
    [club.id],
  );
  const inserted = await db.query(
    `INSERT INTO messages (id, loyalty_club_id, service, name, shorten_urls, track_in_shortener, campaign_id, marketing, created_at, updated_at)
     VALUES ($1, $2, 'generic', 'DD3', true, false, NULL, false, '2020-09-15T10:01:09.467Z', '2020-09-15T10:01:09.467Z')
     ON CONFLICT DO NOTHING RETURNING id`,
    [EXAMPLE_MESSAGE_ID, club.id],
  );
  if (inserted.rows.length) {
    await db.query(
      `INSERT INTO message_templates (id, loyalty_club_id, standalone, name, type, content, wrapper_id, created_at, updated_at)
       VALUES (609193, $1, false, NULL, 'plain', '{"body": "Hei {{name}}"}'::jsonb, 3491, '2020-09-15T12:45:08.618Z', '2020-09-15T12:45:08.618Z')`,
      [club.id],
    );
    await db.query(
      `INSERT INTO message_channels (id, message_id, position, type, template_id, sender_type, sender_value, created_at, updated_at)
       VALUES (55781, $1, 0, 'sms', 609193, 'alphanumeric', 'Infinity', '2020-09-15T12:45:08.625Z', '2020-09-15T12:45:08.625Z')`,
      [EXAMPLE_MESSAGE_ID],
    );
    // Two finished sendings and the scheduled latest one: aggregated status `scheduled`, count 3.
    // The latest is paused: the delivery engine leaves paused sendings alone, so the example stays as documented.
    await db.query(
      `INSERT INTO sendings (id, loyalty_club_id, message_id, status, draft, priority, schedule, scheduled_at, audience_type, audience_id,
         recipients_count, dispatches_count, members_count, transmitted_at, finished_at, paused, created_at, updated_at)
       VALUES
         (3918, $1, $2, 'transmitted', false, 5, '{"type":"immediate"}', '2020-09-15T10:05:00.000Z', 'reference', 107103,
          0, 8990, 8500, '2020-09-15T10:09:12.000Z', '2020-09-15T10:09:12.000Z', false, '2020-09-15T10:05:00.000Z', '2020-09-15T10:09:12.000Z'),
         (3919, $1, $2, 'transmitted', false, 5, '{"type":"immediate"}', '2020-09-15T11:00:00.000Z', 'reference', 107103,
          0, 9120, 8700, '2020-09-15T11:04:40.000Z', '2020-09-15T11:04:40.000Z', false, '2020-09-15T11:00:00.000Z', '2020-09-15T11:04:40.000Z'),
         (3920, $1, $2, 'scheduled', false, 5, '{"type":"absolute","at":"2020-10-15T15:27:02.853Z"}', '2020-10-15T15:27:02.853Z', 'reference', 107103,
          0, 9513, 9000, '2020-10-15T12:45:08.625Z', NULL, true, '2020-09-15T12:27:02.853Z', '2020-09-15T12:45:08.625Z')`,
      [club.id, EXAMPLE_MESSAGE_ID],
    );
  }
  for (const table of ['sms_sender_identities', 'audiences', 'messages', 'message_templates', 'message_channels', 'sendings']) {
    await bumpSequence(db, table);
  }
}
