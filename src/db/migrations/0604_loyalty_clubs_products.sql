-- Loyalty clubs as MPC documents them (2021 › Loyalty Club model) and the per-club product registry
-- (2021 › Products): which member properties a product may read and write.

ALTER TABLE loyalty_clubs
  ADD COLUMN community_id bigint,
  ADD COLUMN customer_id bigint,
  ADD COLUMN short_slug text,
  ADD COLUMN other_slugs text[] NOT NULL DEFAULT '{}',
  -- ISO 3166-1 alpha-2; with `timezone` what phone-number parsing and local-time schedules need
  ADD COLUMN country text NOT NULL DEFAULT 'NO' CHECK (country ~ '^[A-Z]{2}$'),
  ADD COLUMN type text NOT NULL DEFAULT 'REGULAR' CHECK (type IN ('REGULAR', 'TENANTS', 'ICOM')),
  ADD COLUMN new_offers_api_enabled boolean NOT NULL DEFAULT false;
CREATE UNIQUE INDEX loyalty_clubs_community ON loyalty_clubs (community_id) WHERE community_id IS NOT NULL;

CREATE TABLE products (
  id bigserial PRIMARY KEY,
  loyalty_club_id bigint NOT NULL REFERENCES loyalty_clubs(id) ON DELETE CASCADE,
  -- the X-Product-Name value
  name text NOT NULL,
  slug text NOT NULL,
  -- member properties the product may read and write; empty = all
  filtered_member_properties text[] NOT NULL DEFAULT '{}',
  subproducts text[] NOT NULL DEFAULT '{}',
  is_webform boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (loyalty_club_id, name)
);
