-- Messaging (messaging-api.md §5–§10, DECISIONS "Messaging"): campaigns, wrappers, templates,
-- messages, channels, sender identities, sendings, inline recipients and dispatches.
-- Contract shared with the delivery engine: it may add columns in its own migrations; names here
-- stay stable.

CREATE TABLE message_campaigns (
  id bigserial PRIMARY KEY,
  loyalty_club_id bigint NOT NULL REFERENCES loyalty_clubs(id) ON DELETE CASCADE,
  name text NOT NULL,
  description text,
  starts_at timestamptz,
  ends_at timestamptz,
  archived_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_campaigns_club ON message_campaigns (loyalty_club_id, created_at, id);

-- An outer layout with one `{{ content }}` slot; kind says which content it wraps.
CREATE TABLE message_wrappers (
  id bigserial PRIMARY KEY,
  loyalty_club_id bigint NOT NULL REFERENCES loyalty_clubs(id) ON DELETE CASCADE,
  name text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('html', 'text')),
  body text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_wrappers_club ON message_wrappers (loyalty_club_id);

-- Standalone templates (standalone = true, listed by the Templates API) and the private copies
-- owned by one channel (standalone = false), which a channel's `template` is.
CREATE TABLE message_templates (
  id bigserial PRIMARY KEY,
  loyalty_club_id bigint NOT NULL REFERENCES loyalty_clubs(id) ON DELETE CASCADE,
  standalone boolean NOT NULL DEFAULT false,
  name text,
  type text NOT NULL CHECK (type IN ('plain', 'email', 'bee_email', 'push')),
  content jsonb NOT NULL DEFAULT '{}'::jsonb,
  wrapper_id bigint REFERENCES message_wrappers(id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_templates_club ON message_templates (loyalty_club_id, standalone, created_at, id);

CREATE TABLE messages (
  id bigserial PRIMARY KEY,
  loyalty_club_id bigint NOT NULL REFERENCES loyalty_clubs(id) ON DELETE CASCADE,
  service text NOT NULL,
  name text NOT NULL DEFAULT '',
  shorten_urls boolean NOT NULL DEFAULT true,
  track_in_shortener boolean NOT NULL DEFAULT false,
  campaign_id bigint REFERENCES message_campaigns(id) ON DELETE RESTRICT,
  -- effective marketing purpose: the service default unless overridden (§11)
  marketing boolean NOT NULL,
  archived_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_club_service ON messages (loyalty_club_id, service, created_at, id);
CREATE INDEX messages_campaign ON messages (campaign_id) WHERE campaign_id IS NOT NULL;

-- One channel per type per message; position is the priority order (0 first).
CREATE TABLE message_channels (
  id bigserial PRIMARY KEY,
  message_id bigint NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  position int NOT NULL,
  type text NOT NULL CHECK (type IN ('sms', 'email', 'push')),
  template_id bigint NOT NULL REFERENCES message_templates(id),
  sender_type text CHECK (sender_type IN ('alphanumeric', 'international')),
  sender_value text,
  from_email text,
  from_name text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (message_id, type)
);

CREATE TABLE sms_sender_identities (
  id bigserial PRIMARY KEY,
  loyalty_club_id bigint NOT NULL REFERENCES loyalty_clubs(id) ON DELETE CASCADE,
  type text NOT NULL CHECK (type IN ('alphanumeric', 'international')),
  value text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (loyalty_club_id, type, value)
);

CREATE TABLE sendings (
  id bigserial PRIMARY KEY,
  loyalty_club_id bigint NOT NULL REFERENCES loyalty_clubs(id) ON DELETE CASCADE,
  message_id bigint NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  status text NOT NULL DEFAULT 'draft' CHECK (status IN
    ('draft', 'scheduled', 'preparing', 'prepared', 'transmitting', 'transmitted', 'cancelled', 'failed', 'skipped')),
  draft boolean NOT NULL DEFAULT false,
  priority int NOT NULL DEFAULT 5 CHECK (priority BETWEEN 1 AND 10),
  channels_preference text[],
  -- as given: {"type":"immediate"} | {"type":"absolute","at":…} | {"type":"relative","in":…}
  schedule jsonb,
  scheduled_at timestamptz,
  -- 'reference' (audience_id) or 'inline' (audience_conditions); null = recipients only
  audience_type text CHECK (audience_type IN ('reference', 'inline')),
  audience_id bigint,
  audience_conditions jsonb,
  properties jsonb NOT NULL DEFAULT '{}'::jsonb,
  members_count int NOT NULL DEFAULT 0,
  recipients_count int NOT NULL DEFAULT 0,
  dispatches_count int NOT NULL DEFAULT 0,
  -- kept up to date by the shortener / tracking (sending stats)
  clicks_count int NOT NULL DEFAULT 0,
  unique_clicks_count int NOT NULL DEFAULT 0,
  opens_count int NOT NULL DEFAULT 0,
  -- engine bookkeeping
  paused boolean NOT NULL DEFAULT false,
  preparing_started_at timestamptz,
  prepared_at timestamptz,
  transmitting_started_at timestamptz,
  transmitted_at timestamptz,
  cancelled_at timestamptz,
  failed_at timestamptz,
  finished_at timestamptz,
  error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sendings_message ON sendings (message_id, created_at, id);
CREATE INDEX sendings_club ON sendings (loyalty_club_id, created_at, id);
CREATE INDEX sendings_due ON sendings (scheduled_at) WHERE status = 'scheduled';
CREATE INDEX sendings_active ON sendings (status) WHERE status IN ('preparing', 'prepared', 'transmitting');

-- Inline receivers of a sending (§6.7), replaced as a whole on update.
CREATE TABLE sending_recipients (
  id bigserial PRIMARY KEY,
  sending_id bigint NOT NULL REFERENCES sendings(id) ON DELETE CASCADE,
  position int NOT NULL,
  member_id bigint REFERENCES members(id) ON DELETE SET NULL,
  email text,
  msisdn text,
  push_token text,
  properties jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sending_recipients_sending ON sending_recipients (sending_id, position);

-- One row per (sending, receiver): the record of who got what and the engine's work queue.
-- recipient_key identifies the receiver within the sending (e.g. 'member:42', 'email:a@b.c').
CREATE TABLE dispatches (
  id bigserial PRIMARY KEY,
  -- No foreign key here: the sending already belongs to the club (and cascades), and a third
  -- key check on every row costs preparation of a million dispatches seconds.
  loyalty_club_id bigint NOT NULL,
  sending_id bigint NOT NULL REFERENCES sendings(id) ON DELETE CASCADE,
  recipient_key text NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN
    ('pending', 'sending', 'sent', 'delivered', 'failed', 'undeliverable', 'skipped', 'cancelled')),
  channel text CHECK (channel IN ('sms', 'email', 'push')),
  member_id bigint REFERENCES members(id) ON DELETE SET NULL,
  email text,
  msisdn text,
  push_token text,
  properties jsonb NOT NULL DEFAULT '{}'::jsonb,
  skip_reason text,
  provider_id text,
  error text,
  attempts int NOT NULL DEFAULT 0,
  claimed_until timestamptz,
  next_attempt_at timestamptz,
  sent_at timestamptz,
  delivered_at timestamptz,
  failed_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (sending_id, recipient_key)
);
CREATE INDEX dispatches_sending_status ON dispatches (sending_id, status, id);
CREATE INDEX dispatches_member ON dispatches (member_id) WHERE member_id IS NOT NULL;
CREATE INDEX dispatches_provider ON dispatches (provider_id) WHERE provider_id IS NOT NULL;
