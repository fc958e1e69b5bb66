-- Error-burst pause (DECISIONS "Failure"): the engine pauses a transmitting sending whose transport
-- errors cross a threshold; Resume Sending clears `paused`, and a pause not resumed within
-- HEI_PAUSE_TIMEOUT_HOURS fails the sending. `paused` itself is 0200_messaging.sql's.

-- When the latest pause began (engine clock) and why; kept after a resume as its record.
ALTER TABLE sendings ADD COLUMN IF NOT EXISTS paused_at timestamptz;
ALTER TABLE sendings ADD COLUMN IF NOT EXISTS pause_reason text;
-- The scheduler's look-up of expired pauses.
CREATE INDEX IF NOT EXISTS sendings_paused ON sendings (paused_at) WHERE paused AND status = 'transmitting';
