-- What a Cancel Sending stopped: the dispatches it cancelled (null until a cancel arrives). A cancel
-- that finds nothing left to stop records 0 and leaves the status alone (docs/decisions.md).
ALTER TABLE sendings ADD COLUMN cancelled_dispatches_count integer;
