-- Audiences (docs/decisions.md "Audiences") and the reachability rule shared with the delivery engine.

CREATE TABLE audiences (
  id bigserial PRIMARY KEY,
  loyalty_club_id bigint NOT NULL REFERENCES loyalty_clubs(id) ON DELETE CASCADE,
  name text NOT NULL,
  conditions jsonb NOT NULL DEFAULT '[]'::jsonb,
  -- last computed size; lists show it, show / count recompute it
  members_count integer,
  counted_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audiences_club ON audiences (loyalty_club_id, id);

-- has_push_token as a column kept by a trigger, so that reachability needs no subquery per member
-- (a sublink would stop hei_member_reachable from being inlined into set-based statements).
ALTER TABLE members ADD COLUMN IF NOT EXISTS has_push_token boolean NOT NULL DEFAULT false;

CREATE FUNCTION hei_sync_has_push_token() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    UPDATE members SET has_push_token = true WHERE id = NEW.member_id AND NOT has_push_token;
  END IF;
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    UPDATE members SET has_push_token = EXISTS (SELECT 1 FROM member_push_tokens t WHERE t.member_id = OLD.member_id)
     WHERE id = OLD.member_id;
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER member_push_tokens_has_push_token AFTER INSERT OR DELETE OR UPDATE OF member_id ON member_push_tokens
  FOR EACH ROW EXECUTE FUNCTION hei_sync_has_push_token();

-- A date-time property compared in a condition: stale or malformed values count as absent, never an error.
CREATE FUNCTION hei_try_timestamptz(v text) RETURNS timestamptz LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
  IF v IS NULL OR v !~ '^\d{4}-\d{2}-\d{2}' THEN
    RETURN NULL;
  END IF;
  RETURN v::timestamptz;
EXCEPTION WHEN others THEN
  RETURN NULL;
END $$;

-- May member m be reached on channel ('sms' | 'email' | 'push') for a marketing / non-marketing
-- message? DECISIONS "Channel choice" and "Marketing consent". schema_consents is the club's
-- member_schema -> 'consents' (push marketing needs push_marketing only where the club defines it).
-- One SELECT of one expression, no subquery: PostgreSQL inlines it into the caller's WHERE. Never
-- NULL for non-null arguments (every term is NOT NULL or guarded), so NOT hei_member_reachable(…) is safe.
CREATE FUNCTION hei_member_reachable(m members, channel text, marketing boolean, schema_consents jsonb)
RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE channel
    WHEN 'sms' THEN m.msisdn IS NOT NULL AND m.msisdn <> '' AND m.sms_status IN ('enabled', 'verified')
      AND (NOT marketing OR m.consents @> '{"sms_marketing": {"status": true}}'::jsonb)
    WHEN 'email' THEN m.email IS NOT NULL AND m.email <> '' AND m.email_status IN ('enabled', 'verified')
      AND (NOT marketing OR m.consents @> '{"email_marketing": {"status": true}}'::jsonb)
    WHEN 'push' THEN m.push_status = 'enabled' AND m.has_push_token
      AND (NOT marketing OR NOT COALESCE(schema_consents ? 'push_marketing', false)
           OR m.consents @> '{"push_marketing": {"status": true}}'::jsonb)
    ELSE false
  END
$$;
