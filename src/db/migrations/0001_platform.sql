-- Platform: loyalty clubs, client tokens, roles, users, idempotency keys.

CREATE TABLE loyalty_clubs (
  id bigserial PRIMARY KEY,
  slug text NOT NULL UNIQUE,
  name text NOT NULL,
  timezone text NOT NULL DEFAULT 'Europe/Oslo',
  languages text[] NOT NULL DEFAULT ARRAY['en'],
  default_language text NOT NULL DEFAULT 'en',
  -- channels, default senders, shortener: read and written by the messaging module
  messaging_settings jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Opaque tokens are stored only as their SHA-256 hash.
CREATE TABLE client_tokens (
  id bigserial PRIMARY KEY,
  loyalty_club_id bigint NOT NULL REFERENCES loyalty_clubs(id) ON DELETE CASCADE,
  product text NOT NULL,
  name text,
  token_hash text NOT NULL UNIQUE,
  token_prefix text NOT NULL,
  permits text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);
CREATE INDEX client_tokens_club ON client_tokens (loyalty_club_id);

CREATE TABLE roles (
  id bigserial PRIMARY KEY,
  loyalty_club_id bigint NOT NULL REFERENCES loyalty_clubs(id) ON DELETE CASCADE,
  name text NOT NULL,
  permits text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (loyalty_club_id, name)
);

CREATE TABLE users (
  id uuid PRIMARY KEY,
  loyalty_club_id bigint NOT NULL REFERENCES loyalty_clubs(id) ON DELETE CASCADE,
  email text,
  first_name text,
  last_name text,
  roles text[] NOT NULL DEFAULT '{}',
  avatar_url text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_club ON users (loyalty_club_id, created_at, id);

CREATE TABLE user_tokens (
  id bigserial PRIMARY KEY,
  user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  token_hash text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz,
  revoked_at timestamptz
);

-- One row per (client token, Idempotency-Key); response kept for replay during 24 h.
CREATE TABLE idempotency_keys (
  client_token_id bigint NOT NULL REFERENCES client_tokens(id) ON DELETE CASCADE,
  key text NOT NULL,
  request_hash text NOT NULL,
  state text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done')),
  response_status int,
  response_body text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (client_token_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
