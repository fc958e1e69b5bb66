-- Faults (DECISIONS "Faults"): what a crash, a database restart or a transport outage leaves
-- behind must be resumable at once and counted exactly.

-- Set when a dispatch's group is handed to its transport (committed before the call), cleared by
-- the claim: a dead worker's row without it was never handed over and is no possible duplicate.
ALTER TABLE dispatches ADD COLUMN IF NOT EXISTS handed_at timestamptz;

-- The worker holding a preparation, so that it resumes its own at once after a database outage.
ALTER TABLE sendings ADD COLUMN IF NOT EXISTS prepare_claimed_by text;

-- The state of the transport a transmitting sending waits for (null = up): `down`, `throttled`,
-- `disk_full`; since when, for the paused-sending timeout.
ALTER TABLE sendings ADD COLUMN IF NOT EXISTS transport_state text;
ALTER TABLE sendings ADD COLUMN IF NOT EXISTS transport_state_since timestamptz;

-- Every worker process registers here and holds a session advisory lock on (namespace, id) for
-- as long as it lives: a worker whose lock nobody holds is dead and its claims are taken over at
-- once, without waiting for their leases.
CREATE TABLE IF NOT EXISTS delivery_workers (
  id serial PRIMARY KEY,
  name text NOT NULL UNIQUE,
  started_at timestamptz NOT NULL DEFAULT now()
);

-- The rows a worker holds (shutdown release, takeover of a dead worker's claims): small, in flight only.
CREATE INDEX IF NOT EXISTS dispatches_claimed_by ON dispatches (claimed_by) WHERE status = 'sending';
