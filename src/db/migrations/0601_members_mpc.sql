-- Members as MPC documents them: server-assigned integer person ids, import request hashes
-- (a bulk sent again after a timeout answers the stored one).

-- person_id: numeric values a client stored are kept; every other member gets a new number.
CREATE SEQUENCE members_person_id_seq;
ALTER TABLE members ALTER COLUMN person_id TYPE bigint
  USING (CASE WHEN person_id ~ '^[1-9][0-9]{0,14}$' THEN person_id::bigint END);
SELECT setval('members_person_id_seq', GREATEST(COALESCE((SELECT max(person_id) FROM members), 0), 1));
UPDATE members SET person_id = nextval('members_person_id_seq') WHERE person_id IS NULL;
ALTER TABLE members ALTER COLUMN person_id SET DEFAULT nextval('members_person_id_seq');
ALTER TABLE members ALTER COLUMN person_id SET NOT NULL;

ALTER TABLE members_import_bulks ADD COLUMN request_hash text;
