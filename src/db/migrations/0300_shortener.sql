-- Shortener (DECISIONS "Shortener", messaging-api.md §12): links under random base62 codes and
-- their clicks. sending_id / dispatch_id carry no foreign key on purpose: a link must keep
-- redirecting after its sending is deleted, and the hot path (one insert per tracked URL per
-- dispatch) stays free of foreign-key checks.

CREATE TABLE short_links (
  id bigserial PRIMARY KEY,
  code text NOT NULL UNIQUE,
  loyalty_club_id bigint NOT NULL REFERENCES loyalty_clubs(id) ON DELETE CASCADE,
  sending_id bigint,
  -- set when the message has track_in_shortener: the link then names one recipient
  dispatch_id bigint,
  target_url text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
-- One code per (sending, URL), or per (dispatch, URL) when tracked. md5 keeps the key small for
-- long URLs; the target itself is compared on lookup.
CREATE UNIQUE INDEX short_links_per_sending ON short_links (sending_id, md5(target_url)) WHERE dispatch_id IS NULL;
CREATE UNIQUE INDEX short_links_per_dispatch ON short_links (dispatch_id, md5(target_url)) WHERE dispatch_id IS NOT NULL;

CREATE TABLE short_link_clicks (
  id bigserial PRIMARY KEY,
  link_id bigint NOT NULL REFERENCES short_links(id) ON DELETE CASCADE,
  sending_id bigint,
  dispatch_id bigint,
  clicked_at timestamptz NOT NULL DEFAULT now(),
  user_agent text,
  -- scanners, link previews, HEAD and prefetch requests: kept, but not counted as clicks
  bot boolean NOT NULL DEFAULT false,
  -- who clicked, for unique clicks: 'd:<dispatch id>' when tracked, else a hash of address + agent
  visitor text
);
CREATE INDEX short_link_clicks_link ON short_link_clicks (link_id, clicked_at);
CREATE INDEX short_link_clicks_sending_visitor ON short_link_clicks (sending_id, visitor) WHERE NOT bot;
