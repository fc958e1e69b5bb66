-- Why a sending is where it is (DECISIONS "Sending resource"): a machine-readable reason from the
-- enum in src/messaging/status-reason.ts, shown on the sending resource. `error` keeps the
-- human-readable detail for logs and operators.
ALTER TABLE sendings ADD COLUMN IF NOT EXISTS status_reason text;
UPDATE sendings SET status_reason = CASE
    WHEN status = 'failed' AND error LIKE 'not started within%' THEN 'not_started_in_time'
    WHEN status = 'failed' AND error LIKE 'paused and not resumed%' THEN 'paused_too_long'
    WHEN status = 'failed' THEN 'preparation_failed'
    WHEN status = 'cancelled' THEN 'cancelled_by_user'
    WHEN paused THEN 'error_burst'
  END
 WHERE status_reason IS NULL AND (status IN ('failed', 'cancelled') OR paused);
