-- Messaging as MPC documents it (issue 17, DECISIONS "Counters and references", "Wrappers",
-- "Dispatch", "Personal data").

-- dispatches_count is null until the sending is executed (the scheduler sets 0 when preparation
-- begins). Sendings that never started and counted nothing become null; stored counts stay.
ALTER TABLE sendings ALTER COLUMN dispatches_count DROP NOT NULL;
ALTER TABLE sendings ALTER COLUMN dispatches_count DROP DEFAULT;
UPDATE sendings SET dispatches_count = NULL
 WHERE dispatches_count = 0 AND preparing_started_at IS NULL AND status IN ('draft', 'scheduled', 'failed');

-- members_count: distinct members (audience and member_id recipients) whose dispatch a transport
-- accepted; recounted for every sending that has dispatches.
UPDATE sendings s SET members_count = c.n
  FROM (SELECT sending_id, count(*) FILTER (WHERE sent_at IS NOT NULL AND recipient_key LIKE 'member:%')::int AS n
          FROM dispatches GROUP BY sending_id) c
 WHERE c.sending_id = s.id;

-- Wrappers are templates: every wrapper becomes a standalone `generic` template (new id, its body
-- the template's body), every wrapper_id is rewritten, and message_wrapper_ids maps the old ids
-- for GET /v1/messages/wrappers/{id} (one release).
ALTER TABLE message_templates DROP CONSTRAINT IF EXISTS message_templates_type_check;
ALTER TABLE message_templates ADD CONSTRAINT message_templates_type_check CHECK (type IN ('plain', 'email', 'bee_email', 'push', 'generic'));
ALTER TABLE message_templates ADD COLUMN from_wrapper_id bigint;
INSERT INTO message_templates (loyalty_club_id, standalone, name, type, content, from_wrapper_id, created_at, updated_at)
SELECT loyalty_club_id, true, name, 'generic', jsonb_build_object('body', body), id, created_at, updated_at
  FROM message_wrappers ORDER BY id;
CREATE TABLE message_wrapper_ids (
  old_id bigint PRIMARY KEY,
  loyalty_club_id bigint NOT NULL REFERENCES loyalty_clubs(id) ON DELETE CASCADE,
  template_id bigint NOT NULL REFERENCES message_templates(id) ON DELETE CASCADE
);
INSERT INTO message_wrapper_ids (old_id, loyalty_club_id, template_id)
SELECT from_wrapper_id, loyalty_club_id, id FROM message_templates WHERE from_wrapper_id IS NOT NULL;
ALTER TABLE message_templates DROP CONSTRAINT IF EXISTS message_templates_wrapper_id_fkey;
UPDATE message_templates t SET wrapper_id = m.template_id
  FROM message_wrapper_ids m WHERE t.wrapper_id = m.old_id AND t.from_wrapper_id IS NULL;
ALTER TABLE message_templates DROP COLUMN from_wrapper_id;
-- A template used as a wrapper cannot be deleted (the API answers 405 first).
ALTER TABLE message_templates ADD CONSTRAINT message_templates_wrapper_id_fkey FOREIGN KEY (wrapper_id) REFERENCES message_templates(id) ON DELETE RESTRICT;
CREATE INDEX message_templates_wrapper ON message_templates (wrapper_id) WHERE wrapper_id IS NOT NULL;
DROP TABLE message_wrappers;

-- Dispatches as MPC lists them: the content as handed over (null where not stored), the
-- provider's raw delivery status, and when personal data was stripped.
ALTER TABLE dispatches ADD COLUMN IF NOT EXISTS content jsonb;
ALTER TABLE dispatches ADD COLUMN IF NOT EXISTS external_delivery_status text;
ALTER TABLE dispatches ADD COLUMN IF NOT EXISTS cleaned_at timestamptz;

-- Retention of message history and dispatches, per club (days; null keeps them): the one setting
-- the retention job reads (src/delivery/retention.ts), shared with the message history.
ALTER TABLE loyalty_clubs ADD COLUMN IF NOT EXISTS message_retention_days int CHECK (message_retention_days > 0);
CREATE INDEX IF NOT EXISTS dispatches_uncleaned ON dispatches (loyalty_club_id, created_at) WHERE cleaned_at IS NULL;
