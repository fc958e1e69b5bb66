-- Delivery reports that arrived before their dispatch was recorded `sent` (a fast SMSC can answer
-- deliver_sm before the engine has written the provider id). Kept for an hour, applied when the
-- dispatch shows up.
CREATE TABLE delivery_reports_waiting (
  id bigserial PRIMARY KEY,
  loyalty_club_id bigint NOT NULL,
  provider_id text NOT NULL,
  status text NOT NULL,
  at timestamptz NOT NULL,
  error text,
  received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX delivery_reports_waiting_provider ON delivery_reports_waiting (loyalty_club_id, provider_id);
