-- Members-changes webhooks in MPC's format: events queued per subscription (FIFO, one batch in
-- flight, held by the subscription's lease), a delivery log of every POST, secret rotation.

ALTER TABLE members_changes_subscriptions
  ADD COLUMN previous_secret_token text,
  ADD COLUMN previous_secret_expires_at timestamptz,
  ADD COLUMN delivery_locked_until timestamptz;

ALTER TABLE members_webhook_events DROP CONSTRAINT IF EXISTS members_webhook_events_status_check;
ALTER TABLE members_webhook_events ADD CONSTRAINT members_webhook_events_status_check
  CHECK (status IN ('pending', 'delivered', 'failed', 'dropped'));
-- The body format the event was built for (a subscription may change version while events wait).
ALTER TABLE members_webhook_events ADD COLUMN event_schema_version integer NOT NULL DEFAULT 1;
-- Events queued before this format are in Hei's old shape: no MPC receiver could read them.
UPDATE members_webhook_events SET status = 'dropped' WHERE status = 'pending';
CREATE INDEX members_webhook_events_queue ON members_webhook_events (subscription_id, id) WHERE status = 'pending';

-- One row per POST (a batch, a ping or a redelivery), kept as long as its events.
CREATE TABLE members_webhook_deliveries (
  id bigserial PRIMARY KEY,
  subscription_id bigint NOT NULL REFERENCES members_changes_subscriptions(id) ON DELETE CASCADE,
  kind text NOT NULL CHECK (kind IN ('events', 'ping')),
  event_ids bigint[] NOT NULL DEFAULT '{}',
  outcome text NOT NULL CHECK (outcome IN ('delivered', 'retry', 'dropped', 'failed')),
  response_status integer,
  error text,
  duration_ms integer NOT NULL,
  attempted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX members_webhook_deliveries_subscription ON members_webhook_deliveries (subscription_id, id);
CREATE INDEX members_webhook_deliveries_attempted ON members_webhook_deliveries (attempted_at);

DROP TABLE members_webhook_attempts;
