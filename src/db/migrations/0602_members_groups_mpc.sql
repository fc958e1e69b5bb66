-- Member groups as MPC documents them: a free-text type, automatic groups backed by an audience
-- (a stored one, `audience_id`, or their own `audience_conditions`; their memberships are
-- materialised from it when counted), and one system group "All members" per club.

ALTER TABLE member_groups
  ADD COLUMN type text,
  ADD COLUMN automatic boolean NOT NULL DEFAULT false,
  ADD COLUMN system boolean NOT NULL DEFAULT false,
  ADD COLUMN audience_id bigint REFERENCES audiences(id) ON DELETE RESTRICT,
  ADD COLUMN audience_conditions jsonb,
  -- last materialised size of the group; lists show it, show and sendings recompute it
  ADD COLUMN members_count integer NOT NULL DEFAULT 0,
  ADD COLUMN counted_at timestamptz;
UPDATE member_groups g SET members_count = (SELECT count(*) FROM member_group_memberships mm WHERE mm.group_id = g.id);
CREATE UNIQUE INDEX member_groups_one_system ON member_groups (loyalty_club_id) WHERE system;

CREATE FUNCTION hei_club_system_group() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO member_groups (loyalty_club_id, name, type, description, automatic, system, audience_conditions)
  VALUES (NEW.id, 'All members', 'system', 'Every member of the club', true, true, '[]'::jsonb);
  RETURN NULL;
END $$;
CREATE TRIGGER loyalty_clubs_system_group AFTER INSERT ON loyalty_clubs FOR EACH ROW EXECUTE FUNCTION hei_club_system_group();

INSERT INTO member_groups (loyalty_club_id, name, type, description, automatic, system, audience_conditions)
SELECT c.id, 'All members', 'system', 'Every member of the club', true, true, '[]'::jsonb
  FROM loyalty_clubs c WHERE NOT EXISTS (SELECT 1 FROM member_groups g WHERE g.loyalty_club_id = c.id AND g.system);
