-- Members module: the default club schema, import bulks, members-changes webhooks (outbox).

-- A club without its own schema gets a usable one (the audiences module reads consent names and
-- property types from this column). `languages` / `default_language` come from the club row when
-- absent from the schema.
ALTER TABLE loyalty_clubs ALTER COLUMN member_schema SET DEFAULT '{
  "$schema": "http://json-schema.org/draft-04/schema#",
  "type": "object",
  "version": "v2",
  "identifiers": ["email", "msisdn"],
  "consents": {
    "sms_marketing": {"version": "", "required": false, "show_in_profile": true, "show_at_registration": true},
    "email_marketing": {"version": "", "required": false, "show_in_profile": true, "show_at_registration": true},
    "push_marketing": {"version": "", "required": false, "show_in_profile": true, "show_at_registration": true}
  },
  "properties": {
    "email": {"type": "string", "format": "email"},
    "msisdn": {"type": "string", "format": "msisdn"},
    "first_name": {"type": "string", "maxLength": 100},
    "last_name": {"type": "string", "maxLength": 100},
    "birthday": {"type": "string", "format": "date"},
    "gender": {"type": "string", "enum": ["man", "woman", "other"]},
    "language": {"type": "string"}
  },
  "required": []
}'::jsonb;

UPDATE loyalty_clubs SET member_schema = DEFAULT WHERE member_schema = '{}'::jsonb;

-- Filters on favourite stores (`store_ids[]`) use overlap (&&).
CREATE INDEX members_favorite_stores ON members USING gin (favorite_stores);

-- One row per import request (≤ 1000 members). `members` holds the submitted payload until the
-- 24 h purge; counters survive it.
CREATE TABLE members_import_bulks (
  id bigserial PRIMARY KEY,
  loyalty_club_id bigint NOT NULL REFERENCES loyalty_clubs(id) ON DELETE CASCADE,
  import_id text NOT NULL,
  request_number integer,
  operation text NOT NULL CHECK (operation IN ('create', 'update')),
  member_identifier_type text NOT NULL CHECK (member_identifier_type IN ('id', 'email', 'msisdn')),
  multi_values_update_mode text NOT NULL DEFAULT 'replace' CHECK (multi_values_update_mode IN ('replace', 'append')),
  -- X-Product-Name of the submitter: the `source` of webhook events caused by the import
  source text NOT NULL,
  status text NOT NULL DEFAULT 'waiting'
    CHECK (status IN ('waiting', 'working', 'finished', 'failed', 'waiting_for_retry')),
  members jsonb,
  members_in_payload_number integer NOT NULL,
  members_created_number integer NOT NULL DEFAULT 0,
  members_updated_number integer NOT NULL DEFAULT 0,
  members_with_validation_errors_number integer NOT NULL DEFAULT 0,
  members_errors jsonb NOT NULL DEFAULT '{}'::jsonb,
  retries integer NOT NULL DEFAULT 0,
  last_error text,
  -- the worker holding the bulk: its token and how long its claim lasts
  lease_token uuid,
  locked_until timestamptz,
  retry_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  purged_at timestamptz
);
CREATE INDEX members_import_bulks_import ON members_import_bulks (loyalty_club_id, import_id, id);
CREATE UNIQUE INDEX members_import_bulks_request_number ON members_import_bulks (loyalty_club_id, import_id, request_number)
  WHERE request_number IS NOT NULL;
CREATE INDEX members_import_bulks_open ON members_import_bulks (id) WHERE status IN ('waiting', 'working', 'waiting_for_retry');
CREATE INDEX members_import_bulks_unpurged ON members_import_bulks (created_at) WHERE purged_at IS NULL;

CREATE TABLE members_changes_subscriptions (
  id bigserial PRIMARY KEY,
  loyalty_club_id bigint NOT NULL REFERENCES loyalty_clubs(id) ON DELETE CASCADE,
  url text NOT NULL,
  secret_token text NOT NULL,
  event_schema_version integer NOT NULL DEFAULT 1 CHECK (event_schema_version IN (1, 2)),
  is_sent_on_import boolean NOT NULL DEFAULT true,
  is_sent_on_update boolean NOT NULL DEFAULT true,
  is_sent_on_delete boolean NOT NULL DEFAULT true,
  is_person_id_sent boolean NOT NULL DEFAULT false,
  excluded_sources jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (loyalty_club_id, url)
);

-- The outbox: written in the transaction of the member change, delivered by a background job.
-- No foreign key to members: a delete event outlives its member.
CREATE TABLE members_webhook_events (
  id bigserial PRIMARY KEY,
  subscription_id bigint NOT NULL REFERENCES members_changes_subscriptions(id) ON DELETE CASCADE,
  loyalty_club_id bigint NOT NULL REFERENCES loyalty_clubs(id) ON DELETE CASCADE,
  action text NOT NULL CHECK (action IN ('create', 'update', 'delete')),
  member_id bigint NOT NULL,
  payload jsonb NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  locked_until timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  delivered_at timestamptz
);
CREATE INDEX members_webhook_events_due ON members_webhook_events (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX members_webhook_events_subscription ON members_webhook_events (subscription_id, id);

CREATE TABLE members_webhook_attempts (
  id bigserial PRIMARY KEY,
  event_id bigint NOT NULL REFERENCES members_webhook_events(id) ON DELETE CASCADE,
  attempted_at timestamptz NOT NULL DEFAULT now(),
  response_status integer,
  error text,
  duration_ms integer NOT NULL
);
CREATE INDEX members_webhook_attempts_event ON members_webhook_attempts (event_id, id);
