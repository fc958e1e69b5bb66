-- Members of loyalty clubs (members-api.md §2–§3). Contract shared by the members, audiences and
-- delivery modules; each may add columns in its own later migration.

ALTER TABLE loyalty_clubs ADD COLUMN member_schema jsonb NOT NULL DEFAULT '{}'::jsonb;

CREATE TABLE members (
  id bigserial PRIMARY KEY,
  loyalty_club_id bigint NOT NULL REFERENCES loyalty_clubs(id) ON DELETE CASCADE,
  -- schema-defined profile; properties.msisdn is digits only, properties.email lower-case
  properties jsonb NOT NULL DEFAULT '{}'::jsonb,
  msisdn text GENERATED ALWAYS AS (properties ->> 'msisdn') STORED,
  email text GENERATED ALWAYS AS (properties ->> 'email') STORED,
  -- consent name → {"status": bool, "updated_at": iso8601}
  consents jsonb NOT NULL DEFAULT '{}'::jsonb,
  sms_status text NOT NULL DEFAULT 'enabled',
  email_status text NOT NULL DEFAULT 'enabled',
  push_status text NOT NULL DEFAULT 'enabled',
  optin_channel text,
  optin_subchannel text,
  banned_until timestamptz,
  person_id text,
  password_hash text,
  subunit_ids bigint[] NOT NULL DEFAULT '{}',
  favorite_stores bigint[] NOT NULL DEFAULT '{}',
  social_logins text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX members_club_msisdn ON members (loyalty_club_id, msisdn) WHERE msisdn IS NOT NULL;
CREATE UNIQUE INDEX members_club_email ON members (loyalty_club_id, email) WHERE email IS NOT NULL;
CREATE INDEX members_club_created ON members (loyalty_club_id, created_at, id);
-- audience conditions on properties and consents use containment (@>) through these
CREATE INDEX members_properties ON members USING gin (properties jsonb_path_ops);
CREATE INDEX members_consents ON members USING gin (consents jsonb_path_ops);

CREATE TABLE member_push_tokens (
  id bigserial PRIMARY KEY,
  member_id bigint NOT NULL REFERENCES members(id) ON DELETE CASCADE,
  token text NOT NULL,
  platform text,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (member_id, token)
);

CREATE TABLE member_groups (
  id bigserial PRIMARY KEY,
  loyalty_club_id bigint NOT NULL REFERENCES loyalty_clubs(id) ON DELETE CASCADE,
  name text NOT NULL,
  description text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX member_groups_club ON member_groups (loyalty_club_id);

CREATE TABLE member_group_memberships (
  group_id bigint NOT NULL REFERENCES member_groups(id) ON DELETE CASCADE,
  member_id bigint NOT NULL REFERENCES members(id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (group_id, member_id)
);
CREATE INDEX member_group_memberships_member ON member_group_memberships (member_id);
