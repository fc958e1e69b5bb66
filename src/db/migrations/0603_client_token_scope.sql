-- Client tokens as MPC scopes them: bound to several clubs or to all (all_clubs), to one product
-- or to any (product NULL). Existing tokens keep their one club and product. Idempotency keys are
-- scoped per client token or, for requests made with a user token alone, per user.

ALTER TABLE client_tokens ALTER COLUMN loyalty_club_id DROP NOT NULL;
ALTER TABLE client_tokens ALTER COLUMN product DROP NOT NULL;
ALTER TABLE client_tokens ADD COLUMN all_clubs boolean NOT NULL DEFAULT false;

CREATE TABLE client_token_clubs (
  client_token_id bigint NOT NULL REFERENCES client_tokens(id) ON DELETE CASCADE,
  loyalty_club_id bigint NOT NULL REFERENCES loyalty_clubs(id) ON DELETE CASCADE,
  PRIMARY KEY (client_token_id, loyalty_club_id)
);
CREATE INDEX client_token_clubs_club ON client_token_clubs (loyalty_club_id);
INSERT INTO client_token_clubs (client_token_id, loyalty_club_id) SELECT id, loyalty_club_id FROM client_tokens WHERE loyalty_club_id IS NOT NULL;

ALTER TABLE idempotency_keys ADD COLUMN scope text;
UPDATE idempotency_keys SET scope = 'token:' || client_token_id;
ALTER TABLE idempotency_keys ALTER COLUMN scope SET NOT NULL;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ALTER COLUMN client_token_id DROP NOT NULL;
ALTER TABLE idempotency_keys ADD COLUMN user_id uuid REFERENCES users(id) ON DELETE CASCADE;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (scope, key);
