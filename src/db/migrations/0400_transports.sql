-- Transports: per club and channel, a primary and an optional secondary transport URL
-- (AES-256-GCM encrypted, never stored or echoed in clear), and persisted rate-limit buckets.

CREATE TABLE transport_configs (
  id bigserial PRIMARY KEY,
  loyalty_club_id bigint NOT NULL REFERENCES loyalty_clubs(id) ON DELETE CASCADE,
  channel text NOT NULL CHECK (channel IN ('sms', 'email', 'push')),
  role text NOT NULL CHECK (role IN ('primary', 'secondary')),
  url_encrypted text NOT NULL,
  -- e.g. '500/s,20000/h'; null = unlimited
  rate text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (loyalty_club_id, channel, role)
);

-- One row per (transport account, window). tokens may go below zero: a long SMS is admitted when
-- the bucket is full and then owes its remaining segments.
CREATE TABLE transport_rate_buckets (
  account text NOT NULL,
  window_ms bigint NOT NULL,
  tokens double precision NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (account, window_ms)
);
