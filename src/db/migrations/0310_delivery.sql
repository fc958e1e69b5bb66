-- Delivery engine bookkeeping on the messaging tables (0200_messaging.sql owns them).

-- A worker preparing a sending holds it until this time; a dead worker's claim expires and
-- another worker prepares it again (preparation is one transaction, so nothing half-built remains).
ALTER TABLE sendings ADD COLUMN IF NOT EXISTS prepare_claimed_until timestamptz;
-- Dispatches handed to a transport again after their worker died during the call: the only
-- messages that may have gone out twice.
ALTER TABLE sendings ADD COLUMN IF NOT EXISTS possible_duplicates int NOT NULL DEFAULT 0;
-- Set once the engine has closed the remaining dispatches of a cancelled or failed sending.
ALTER TABLE sendings ADD COLUMN IF NOT EXISTS dispatches_closed_at timestamptz;
CREATE INDEX IF NOT EXISTS sendings_to_close ON sendings (id)
  WHERE status IN ('cancelled', 'failed') AND dispatches_closed_at IS NULL;

-- Which worker holds the lease (claimed_until) of a dispatch in state `sending`.
ALTER TABLE dispatches ADD COLUMN IF NOT EXISTS claimed_by text;
-- True when this dispatch was taken over from a dead worker that may already have sent it.
ALTER TABLE dispatches ADD COLUMN IF NOT EXISTS possible_duplicate boolean NOT NULL DEFAULT false;
