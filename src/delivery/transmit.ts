// Transmission: a pipeline of named steps per batch — claim → render → shorten → hand over →
// record — each able to stop the batch, every outcome written on its dispatch.
//
// The dispatch row is the work queue. A claim moves rows `pending → sending` with a lease
// (claimed_until, claimed_by) and counts the attempt *before* the transport sees them, so:
//   - a worker that dies loses its leases; another worker takes the rows over and flags them
//     `possible_duplicate` (they may have been inside the dead worker's transport call) and adds
//     them to sendings.possible_duplicates — the only messages that can go out twice;
//   - the hand-over happens while holding a share lock on the sending row (PostgreSQL), so a
//     Cancel (an UPDATE of that row) waits for the batch in flight and nothing is handed to a
//     transport after the cancel returns.
//
// Error bursts (DECISIONS "Failure"): every batch's transport results feed one ErrorBurstDetector
// per process; when it says burst the sending is paused (its retryable dispatches stay `pending`
// instead of using up their attempts) and nothing more is claimed for it until Resume Sending.
// The scheduler fails a pause that is not resumed in time (scheduler.ts).
//
// Faults (DECISIONS "Faults"): a claimed batch is handed over in groups of at most RECORD_GROUP;
// each group is marked `handed_at` (committed) before its transport call and its results are
// committed right after it, so a killed worker leaves at most its groups in flight as possible
// duplicates. A transport outage (an `outage` result, or a throw) backs the transport off and
// costs no attempt. A batch cut by a database outage is taken up again by this worker as soon as
// the database answers; a dead worker's claims are taken over as soon as its presence lock is gone.
import { DatabaseUnavailable, type Database, type Queryable } from '../db/connection.ts';
import { HANDOVER_LOCK_ID, SENDING_HANDOVER_LOCK } from '../messaging/sendings.ts';
import { markAddressGone } from '../members/members.ts';
import { clubSettings } from '../messaging/settings.ts';
import type { LoyaltyClub } from '../platform/context.ts';
import { LinkStore, findUrls, linkKey, rewriteUrls, targetOf, type LinkRequest } from '../shortener/links.ts';
import { ErrorBurstDetector } from '../transports/failover.ts';
import type { TransportResolver } from '../transports/registry.ts';
import type { Channel, OutgoingMessage, SendResult, Transport, TransportOutage } from '../transports/transport.ts';
import type { StatusReason } from '../messaging/status-reason.ts';
import type { Clock, DeliverySettings } from './config.ts';
import type { DeliveryMetrics } from './metrics.ts';
import { deadWorkers } from './presence.ts';
import type { TransportHealth } from './transport-health.ts';
import type { UnsubscribeLinks } from './unsubscribe.ts';
import { clubDefaults, compileChannel, mergeVars, renderContent, type ChannelDefinition, type CompiledChannel, type Content, type Vars } from './render.ts';

export interface TransmitDeps {
  db: Database;
  settings: DeliverySettings;
  clock: Clock;
  resolver: TransportResolver;
  metrics: DeliveryMetrics;
  shortenerBaseUrl: string;
  /** Signed unsubscribe links of member dispatches. */
  unsubscribe: UnsubscribeLinks;
  log: { error(obj: object, msg: string): void; warn(obj: object, msg: string): void };
  health: TransportHealth;
}

/** Dispatches handed to a transport between two commits: what a killed worker can repeat. */
export const RECORD_GROUP = 50;

/** The status_reason a transmitting sending shows while its transport is in an outage. */
export const OUTAGE_REASONS: Record<TransportOutage, StatusReason> = {
  down: 'transport_down',
  throttled: 'transport_throttled',
  disk_full: 'disk_full',
};

/** Per sending, members whose dispatch a transport accepted in one write (members_count). */
type MembersHanded = Map<number, number>;

/** A batch stopped by shutdown while its transport call was in flight: its rows are released. */
class StoppedInFlight extends Error {}

/** What one batch learnt, applied to the sending once the batch's locks are gone. */
interface BatchNews {
  /** Members' dispatches accepted, counted on the sending once the batch's locks are gone. */
  handed: MembersHanded;
  burst: boolean;
  lastError: string;
  outage: TransportOutage | null;
  sent: boolean;
}

interface SendingContext {
  id: number;
  club: LoyaltyClub;
  priority: number;
  marketing: boolean;
  shortenUrls: boolean;
  trackInShortener: boolean;
  shortenerBaseUrl: string;
  properties: Vars;
  defaults: Vars;
  channels: Map<Channel, CompiledChannel | Error>;
  loadedAt: number;
}

interface ClaimedRow {
  id: number;
  channel: Channel;
  member_id: number | null;
  email: string | null;
  msisdn: string | null;
  push_token: string | null;
  properties: Vars;
  attempts: number;
  /** Claimed from a dead (or this) worker after it had handed the row to a transport. */
  was_handed?: boolean;
  member_properties: Record<string, unknown> | null;
  member_email: string | null;
  member_msisdn: string | null;
}

/** What becomes of one claimed dispatch. */
interface Outcome {
  id: number;
  channel: Channel;
  status: 'sent' | 'pending' | 'failed' | 'undeliverable' | 'cancelled';
  providerId: string | null;
  error: string | null;
  nextAttemptAt: Date | null;
  /** 1 when the attempt did not count (a throttled message, a cancelled batch). */
  refund: number;
  /** The content handed over (JSON, keys as the template's), kept on a sent dispatch. */
  content?: string | null;
  gone?: { memberId: number | null; address: string | null };
}

interface ActiveSending {
  id: number;
  priority: number;
}

const CONTEXT_TTL_MS = 60_000;
/** The error prefix of a dispatch whose content could not be rendered (see finishIfDone). */
const RENDER_FAILED = 'render failed';

export class Transmitter {
  private readonly contexts = new Map<number, SendingContext>();
  private readonly cursors = new Map<number, number>();
  private readonly sweptAt = new Map<number, number>();
  private readonly links: LinkStore;
  private turn = 0;
  private readonly bursts: ErrorBurstDetector;
  /** Sendings this process saw paused: when one is active again it was resumed (fresh window). */
  private readonly pausedSeen = new Set<number>();
  /** Rows of batches cut short by a database outage, per sending: taken up again first. */
  private readonly abandoned = new Map<number, number[]>();
  /** The transport state last written on each sending (undefined: not known to this process). */
  private readonly shownState = new Map<number, TransportOutage | null>();
  /** Results a database outage kept from being recorded: written first when it answers again. */
  private unrecorded: Outcome[] = [];
  private deadCheckedAt = 0;
  private dead: string[] = [];

  constructor(private readonly deps: TransmitDeps) {
    this.links = new LinkStore(deps.db);
    const { pauseWindowMs, pauseMinSamples, pauseErrorRatio } = deps.settings;
    this.bursts = new ErrorBurstDetector({
      windowMs: pauseWindowMs,
      minSamples: pauseMinSamples,
      maxErrorRatio: pauseErrorRatio,
      now: () => deps.clock().getTime(),
    });
  }

  /** One run of the transmit job: up to `concurrency` batches at once. True when it did work. */
  async tick(signal?: AbortSignal): Promise<boolean> {
    if (this.unrecorded.length) {
      // The transports answered before the outage: record, never hand over again.
      await this.countMembers(await this.record(this.unrecorded));
      this.unrecorded = [];
    }
    await this.startPrepared();
    await this.closeFinished();
    const active = await this.activeSendings();
    if (active.length === 0) return false;
    // Shutdown (signal): no new group is handed over; a transport call in flight gets
    // `shutdownGraceMs` to finish before it is aborted and its rows released.
    const grace = new AbortController();
    const onStop = () => setTimeout(() => grace.abort(), this.deps.settings.shutdownGraceMs).unref();
    signal?.addEventListener('abort', onStop, { once: true });
    try {
      const slots = Array.from({ length: this.deps.settings.concurrency }, () => this.batchFromAny(active, signal, grace.signal));
      const done = await Promise.all(slots);
      return done.some((n) => n > 0);
    } finally {
      signal?.removeEventListener('abort', onStop);
    }
  }

  /**
   * Shutdown: rows this worker still holds go back to `pending` — the attempt refunded when they
   * never reached a transport, flagged `possible_duplicate` (and counted) when they did.
   */
  async releaseClaims(): Promise<number> {
    const { db, settings, clock } = this.deps;
    if (this.unrecorded.length) {
      await this.countMembers(await this.record(this.unrecorded));
      this.unrecorded = [];
    }
    return db.transaction(async (tx) => {
      const { rows } = await tx.query<{ sending_id: number; handed: number; n: number }>(
        `WITH mine AS (
           SELECT id, sending_id, handed_at IS NOT NULL AS handed FROM dispatches
            WHERE status = 'sending' AND claimed_by = $1 FOR UPDATE),
         released AS (
           UPDATE dispatches d
              SET status = 'pending', claimed_until = NULL, handed_at = NULL, updated_at = $2,
                  attempts = d.attempts - CASE WHEN m.handed THEN 0 ELSE 1 END,
                  possible_duplicate = d.possible_duplicate OR m.handed
             FROM mine m WHERE d.id = m.id
           RETURNING d.id)
         SELECT sending_id, count(*) FILTER (WHERE handed)::int AS handed, count(*)::int AS n FROM mine GROUP BY sending_id`,
        [settings.workerId, clock()],
      );
      let n = 0;
      for (const r of rows) {
        n += r.n;
        if (r.handed) await tx.query('UPDATE sendings SET possible_duplicates = possible_duplicates + $2 WHERE id = $1', [r.sending_id, r.handed]);
      }
      return n;
    });
  }

  /** `prepared → transmitting`: the state is visible between preparation and the first claim. */
  private async startPrepared(): Promise<void> {
    const now = this.deps.clock();
    const { rows } = await this.deps.db.query<{ id: number }>(
      `UPDATE sendings SET status = 'transmitting', transmitting_started_at = $1, updated_at = $1
        WHERE status = 'prepared' AND ($2::bigint[] IS NULL OR loyalty_club_id = ANY($2::bigint[]))
          AND (scheduled_at IS NULL OR scheduled_at <= $1) -- prepared early, never transmitted before its time
        RETURNING id`,
      [now, this.deps.settings.clubIds],
    );
    if (rows.length) this.deps.metrics.sendings.inc({ status: 'transmitting' }, rows.length);
  }

  /**
   * Cancelled (or failed) sendings: every dispatch not handed to a transport ends `cancelled`
   * (or `failed`). Rows still leased by a live worker are left to it — it sees the status under
   * the sending's lock and cancels its own batch; rows of a dead worker's lease were possibly
   * handed over and say so.
   */
  private async closeFinished(): Promise<void> {
    const { db, clock, settings } = this.deps;
    const { rows } = await db.query<{ id: number; status: string }>(
      `SELECT id, status FROM sendings
        WHERE status IN ('cancelled', 'failed') AND dispatches_closed_at IS NULL
          AND ($1::bigint[] IS NULL OR loyalty_club_id = ANY($1::bigint[]))
        ORDER BY id LIMIT 20`,
      [settings.clubIds],
    );
    for (const s of rows) {
      const now = clock();
      const to = s.status === 'cancelled' ? 'cancelled' : 'failed';
      const closed = await db.query<{ channel: string; n: number }>(
        `WITH closed AS (
           UPDATE dispatches
              SET status = $2, claimed_until = NULL, claimed_by = NULL, updated_at = $3,
                  failed_at = CASE WHEN $2 = 'failed' THEN $3 ELSE failed_at END,
                  error = CASE WHEN status = 'sending' AND handed_at IS NOT NULL THEN 'worker lost during the transport call: may have been sent'
                               WHEN $2 = 'failed' THEN 'sending failed' ELSE error END
            WHERE sending_id = $1 AND (status = 'pending' OR (status = 'sending' AND claimed_until < $3))
            RETURNING channel)
         SELECT channel, count(*)::int AS n FROM closed GROUP BY channel`,
        [s.id, to, now],
      );
      for (const r of closed.rows) this.deps.metrics.dispatches.inc({ channel: r.channel ?? 'none', outcome: to }, r.n);
      await db.query(
        `UPDATE sendings SET dispatches_closed_at = $2
          WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM dispatches WHERE sending_id = $1 AND status IN ('pending', 'sending'))`,
        [s.id, now],
      );
      this.forget(s.id);
    }
  }

  /**
   * Sendings being transmitted, higher priority first. Within one priority the order rotates on
   * every call, so concurrent sendings take turns (fairness) and no sending starves another.
   * A sending with nothing left in flight is finished here.
   */
  private async activeSendings(): Promise<ActiveSending[]> {
    const { db, settings } = this.deps;
    // Paused sendings are listed too, never to be claimed from: so that this process knows them
    // (a resumed one starts from a fresh error window) and finishes one with nothing left open.
    const { rows } = await db.query<{ id: number; priority: number; paused: boolean; open: boolean }>(
      `SELECT s.id, s.priority, s.paused,
              EXISTS (SELECT 1 FROM dispatches d WHERE d.sending_id = s.id AND d.status IN ('pending', 'sending')) AS open
         FROM sendings s
        WHERE s.status = 'transmitting'
          AND ($1::bigint[] IS NULL OR s.loyalty_club_id = ANY($1::bigint[]))
        ORDER BY s.priority DESC, s.id`,
      [settings.clubIds],
    );
    const open: ActiveSending[] = [];
    for (const r of rows) {
      if (r.paused) this.sawPaused(r.id);
      else if (this.pausedSeen.delete(r.id)) this.bursts.reset(r.id); // resumed
      if (!r.open) await this.finishIfDone(r.id);
      else if (!r.paused) open.push({ id: r.id, priority: r.priority });
    }
    const turn = this.turn++;
    const byPriority = new Map<number, ActiveSending[]>();
    for (const s of open) byPriority.set(s.priority, [...(byPriority.get(s.priority) ?? []), s]);
    return [...byPriority.keys()]
      .sort((a, b) => b - a)
      .flatMap((p) => {
        const group = byPriority.get(p)!;
        const k = turn % group.length;
        return [...group.slice(k), ...group.slice(0, k)];
      });
  }

  private async finishIfDone(sendingId: number): Promise<boolean> {
    const now = this.deps.clock();
    const { rows, rowCount } = await this.deps.db.query<{ status: string }>(
      `WITH d AS (
         SELECT bool_or(sent_at IS NOT NULL) AS handed,
                bool_or(status = 'failed') AS any_failed,
                bool_and(status <> 'failed' OR error LIKE $3) AS failures_render
           FROM dispatches WHERE sending_id = $1 AND status NOT IN ('skipped', 'cancelled'))
       UPDATE sendings SET paused = false, finished_at = $2, updated_at = $2,
              status = CASE WHEN render_failed THEN 'failed' ELSE 'transmitted' END,
              status_reason = CASE WHEN render_failed THEN 'render_failed' ELSE status_reason END,
              failed_at = CASE WHEN render_failed THEN $2 ELSE failed_at END,
              transmitted_at = CASE WHEN render_failed THEN transmitted_at ELSE $2 END
         FROM (SELECT COALESCE(NOT d.handed AND d.any_failed AND d.failures_render, false) AS render_failed FROM d) x
        WHERE id = $1 AND status = 'transmitting'
          AND NOT EXISTS (SELECT 1 FROM dispatches WHERE sending_id = $1 AND status IN ('pending', 'sending'))
        RETURNING status`,
      [sendingId, now, `${RENDER_FAILED}%`],
    );
    if (rowCount > 0) {
      // Nothing handed over because every attempt failed to render: failed, render_failed (DECISIONS "Templates").
      this.deps.metrics.sendings.inc({ status: rows[0].status });
      this.forget(sendingId);
    }
    return rowCount > 0;
  }

  private forget(sendingId: number): void {
    this.contexts.delete(sendingId);
    this.cursors.delete(sendingId);
    this.sweptAt.delete(sendingId);
    this.pausedSeen.delete(sendingId);
    this.shownState.delete(sendingId);
    this.bursts.reset(sendingId);
  }

  /** A paused sending: whatever its window held is stale once it is resumed. */
  private sawPaused(sendingId: number): void {
    if (this.pausedSeen.has(sendingId)) return;
    this.pausedSeen.add(sendingId);
    this.bursts.reset(sendingId);
  }

  /**
   * What a batch learnt, written on its sending after the batch's locks are released (two
   * batches holding the sending's share lock must not both try to update it): an error burst
   * pauses it; a transport outage shows on it (`transport_state`, `status_reason`) until a
   * message goes through again.
   */
  private async afterBatch(sendingId: number, news: BatchNews): Promise<void> {
    const { db, clock, settings } = this.deps;
    const now = clock();
    await this.countMembers(news.handed);
    if (news.burst) {
      const reason = (
        `transport errors reached ${Math.round(settings.pauseErrorRatio * 100)}% of at least ${settings.pauseMinSamples} results ` +
        `within ${Math.round(settings.pauseWindowMs / 1000)} s (last: ${news.lastError})`
      ).slice(0, 1000);
      const { rowCount } = await db.query(
        `UPDATE sendings SET paused = true, status_reason = 'error_burst', paused_at = $2, pause_reason = $3, updated_at = $2
          WHERE id = $1 AND status = 'transmitting' AND NOT paused`,
        [sendingId, now, reason],
      );
      this.sawPaused(sendingId);
      if (rowCount > 0) {
        this.deps.metrics.sendings.inc({ status: 'paused' });
        this.deps.log.warn({ sendingId, reason }, 'sending paused: error burst');
      }
    }
    const shown = this.shownState.get(sendingId);
    if (news.outage && shown !== news.outage) {
      await db.query(
        `UPDATE sendings SET transport_state = $2, transport_state_since = COALESCE(transport_state_since, $3), updated_at = $3,
                status_reason = CASE WHEN status_reason IS NULL OR status_reason = ANY($4::text[]) THEN $5 ELSE status_reason END
          WHERE id = $1 AND status = 'transmitting'`,
        [sendingId, news.outage, now, Object.values(OUTAGE_REASONS), OUTAGE_REASONS[news.outage]],
      );
      this.shownState.set(sendingId, news.outage);
    } else if (!news.outage && news.sent && shown !== null) {
      await db.query(
        `UPDATE sendings SET transport_state = NULL, transport_state_since = NULL, updated_at = $2,
                status_reason = CASE WHEN status_reason = ANY($3::text[]) THEN NULL ELSE status_reason END
          WHERE id = $1 AND transport_state IS NOT NULL`,
        [sendingId, now, Object.values(OUTAGE_REASONS)],
      );
      this.shownState.set(sendingId, null);
    }
  }

  /** One batch from the first sending (in priority/turn order) that has claimable work. */
  private async batchFromAny(active: ActiveSending[], signal?: AbortSignal, grace?: AbortSignal): Promise<number> {
    for (const s of active) {
      if (signal?.aborted) return 0;
      const n = await this.batch(s.id, signal, grace);
      if (n > 0) return n;
    }
    return 0;
  }

  /** Claim → render → shorten → hand over → record, for one sending. Returns dispatches handled. */
  async batch(sendingId: number, signal?: AbortSignal, grace?: AbortSignal): Promise<number> {
    const started = process.hrtime.bigint();
    const rows = await this.claim(sendingId);
    if (rows.length === 0) return 0;
    try {
      const ctx = await this.context(sendingId);
      if (!ctx) {
        await this.record(rows.map((r) => this.cancelled(r, 'sending no longer exists')));
        return rows.length;
      }
      const rendered = await this.render(ctx, rows);
      if (ctx.shortenUrls) await this.shorten(ctx, rendered);
      await this.handOver(ctx, rendered, signal, grace);
    } catch (err) {
      if (err instanceof DatabaseUnavailable) {
        // Cut by a database outage: this worker takes the rows it still holds up again as soon as
        // the database answers (the worker logs the outage once).
        this.abandoned.set(sendingId, [...(this.abandoned.get(sendingId) ?? []), ...rows.map((r) => r.id)]);
        throw err;
      }
      if (err instanceof StoppedInFlight) return rows.length; // shutdown: releaseClaims() puts them back
      // Any other engine fault (shortener failing…): the rows stay leased and are taken over when
      // the lease ends — retried, never lost.
      this.deps.log.error({ err, sendingId }, 'delivery batch failed');
      throw err;
    } finally {
      this.deps.metrics.batch.observe(Number(process.hrtime.bigint() - started) / 1e9);
    }
    return rows.length;
  }

  // -- claim ------------------------------------------------------------------------------------

  private async claim(sendingId: number): Promise<ClaimedRow[]> {
    const { settings, clock } = this.deps;
    const now = clock();
    const leaseEnd = new Date(now.getTime() + settings.leaseMs);
    // Leases of dead workers, looked for every few seconds rather than on every batch.
    // Rows of this worker's batch cut by a database outage: at once, not when the lease ends.
    const mine = this.abandoned.get(sendingId);
    if (mine?.length) {
      this.abandoned.delete(sendingId);
      const taken = await this.claimWhere(sendingId, `status = 'sending' AND claimed_by = $8 AND id = ANY($9::bigint[])`, 0, now, leaseEnd, true, mine.length, [
        settings.workerId,
        mine,
      ]);
      if (taken.length) return this.takenOver(sendingId, taken);
    }
    // Rows of dead workers (presence lock gone) at once, expired leases of anyone.
    const sweepEvery = Math.min(2_000, settings.leaseMs / 4);
    if (now.getTime() - (this.sweptAt.get(sendingId) ?? 0) >= sweepEvery) {
      this.sweptAt.set(sendingId, now.getTime());
      const dead = await this.deadWorkers();
      const taken = await this.claimWhere(sendingId, `status = 'sending' AND (claimed_until < $2 OR claimed_by = ANY($8::text[]))`, 0, now, leaseEnd, true, undefined, [dead]);
      if (taken.length) return this.takenOver(sendingId, taken);
    }
    // A cursor per sending: the claim starts after the last id this process claimed, instead of
    // stepping again over the rows already sent; from the start again when that end is reached
    // (retries and rows skipped while locked by another worker).
    const cursor = this.cursors.get(sendingId) ?? 0;
    const where = `status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= $2)`;
    let rows = await this.claimWhere(sendingId, where, cursor, now, leaseEnd, false);
    if (rows.length < settings.batchSize && cursor > 0) {
      const more = await this.claimWhere(sendingId, where, 0, now, leaseEnd, false, settings.batchSize - rows.length);
      rows = rows.concat(more);
    }
    if (rows.length) this.cursors.set(sendingId, Math.max(cursor, ...rows.map((r) => r.id)));
    return rows;
  }

  /** Workers whose presence lock is gone, looked up at most every 2 s. */
  async deadWorkers(): Promise<string[]> {
    const now = Date.now();
    if (now - this.deadCheckedAt >= 2_000) {
      this.dead = await deadWorkers(this.deps.db, this.deps.db.kind === 'pglite' ? 0 : undefined);
      this.deadCheckedAt = now;
    }
    return this.dead;
  }

  /** Rows taken over after a crash: those already handed to a transport may go out twice. */
  private async takenOver(sendingId: number, taken: ClaimedRow[]): Promise<ClaimedRow[]> {
    const handed = taken.filter((r) => r.was_handed);
    if (handed.length) {
      await this.deps.db.query('UPDATE sendings SET possible_duplicates = possible_duplicates + $2 WHERE id = $1', [sendingId, handed.length]);
      for (const r of handed) this.deps.metrics.dispatches.inc({ channel: r.channel, outcome: 'possible_duplicate' });
    }
    return taken;
  }

  private async claimWhere(
    sendingId: number, where: string, after: number, now: Date, leaseEnd: Date, takeover: boolean,
    limit = this.deps.settings.batchSize, extra: unknown[] = [],
  ): Promise<ClaimedRow[]> {
    // A taken-over row that never reached a transport gets its attempt back and is no duplicate.
    const { rows } = await this.deps.db.query<ClaimedRow>(
      `WITH picked AS (
         SELECT id, $7::boolean AND handed_at IS NOT NULL AS was_handed FROM dispatches
          WHERE sending_id = $1 AND ${where} AND id > $3
          ORDER BY id LIMIT $4
          FOR UPDATE SKIP LOCKED),
       -- by primary key (= ANY): a join with picked can turn into a scan of the whole table
       claimed AS (
         UPDATE dispatches d
            SET status = 'sending', claimed_until = $5, claimed_by = $6, updated_at = $2, handed_at = NULL,
                attempts = d.attempts + CASE WHEN $7::boolean AND d.handed_at IS NULL THEN 0 ELSE 1 END,
                possible_duplicate = d.possible_duplicate OR ($7::boolean AND d.handed_at IS NOT NULL)
          WHERE d.id = ANY (ARRAY(SELECT id FROM picked))
         RETURNING d.id, d.channel, d.member_id, d.email, d.msisdn, d.push_token, d.properties, d.attempts)
       SELECT c.*, p.was_handed, m.properties AS member_properties, m.email AS member_email, m.msisdn AS member_msisdn
         FROM claimed c JOIN picked p ON p.id = c.id LEFT JOIN members m ON m.id = c.member_id
        ORDER BY c.id`,
      [sendingId, now, after, limit, leaseEnd, this.deps.settings.workerId, takeover, ...extra],
    );
    return rows;
  }

  // -- context ----------------------------------------------------------------------------------

  private async context(sendingId: number): Promise<SendingContext | null> {
    const cached = this.contexts.get(sendingId);
    if (cached && Date.now() - cached.loadedAt < CONTEXT_TTL_MS) return cached;
    const { db } = this.deps;
    const { rows } = await db.query<any>(
      `SELECT s.id, s.priority, s.properties, s.message_id, msg.name AS message_name, msg.marketing, msg.shorten_urls, msg.track_in_shortener,
              c.id AS club_id, c.slug, c.name, c.timezone, c.languages, c.default_language, c.messaging_settings, c.created_at, c.updated_at
         FROM sendings s JOIN messages msg ON msg.id = s.message_id JOIN loyalty_clubs c ON c.id = s.loyalty_club_id
        WHERE s.id = $1`,
      [sendingId],
    );
    const r = rows[0];
    if (!r) return null;
    const club: LoyaltyClub = {
      id: r.club_id, slug: r.slug, name: r.name, timezone: r.timezone, languages: r.languages, default_language: r.default_language,
      messaging_settings: r.messaging_settings ?? {}, created_at: r.created_at, updated_at: r.updated_at,
    };
    const { rows: channelRows } = await db.query<any>(
      `SELECT c.type, c.sender_type, c.sender_value, c.from_email, c.from_name, t.type AS template_type, t.content,
              w.content AS wrapper_content
         FROM message_channels c
         JOIN message_templates t ON t.id = c.template_id
         LEFT JOIN message_templates w ON w.id = t.wrapper_id
        WHERE c.message_id = $1 ORDER BY c.position, c.id`,
      [r.message_id],
    );
    const channels = new Map<Channel, CompiledChannel | Error>();
    for (const c of channelRows) {
      const def: ChannelDefinition = {
        type: c.type, templateType: c.template_type, content: c.content ?? {},
        wrapper: c.wrapper_content ?? null,
        senderType: c.sender_type, senderValue: c.sender_value, fromEmail: c.from_email, fromName: c.from_name, messageName: r.message_name,
      };
      try {
        channels.set(c.type, compileChannel(def, club));
      } catch (err) {
        channels.set(c.type, err instanceof Error ? err : new Error(String(err)));
      }
    }
    // The club's shortener switch and base URL (messaging settings) over the process default.
    const shortener = clubSettings(club, this.deps.shortenerBaseUrl).shortener;
    const ctx: SendingContext = {
      id: r.id, club, priority: r.priority, marketing: r.marketing,
      shortenUrls: r.shorten_urls && shortener.enabled, trackInShortener: r.track_in_shortener,
      shortenerBaseUrl: shortener.base_url ?? this.deps.shortenerBaseUrl,
      properties: r.properties ?? {}, defaults: clubDefaults(club), channels, loadedAt: Date.now(),
    };
    if (this.contexts.size > 1000) this.contexts.clear();
    this.contexts.set(sendingId, ctx);
    return ctx;
  }

  // -- render -----------------------------------------------------------------------------------

  private async render(ctx: SendingContext, rows: ClaimedRow[]): Promise<Array<{ row: ClaimedRow; content: Content | null; error: string | null }>> {
    const appTokens = await this.memberAppTokens(ctx, rows);
    return Promise.all(
      rows.map(async (row) => {
        const ch = ctx.channels.get(row.channel);
        if (!ch) return { row, content: null, error: `message has no ${row.channel} channel` };
        if (ch instanceof Error) return { row, content: null, error: `${RENDER_FAILED}: ${ch.message}` };
        const member = row.member_id !== null && row.member_properties
          ? { id: row.member_id, properties: row.member_properties, email: row.member_email, msisdn: row.member_msisdn, app_token: appTokens?.get(row.member_id) ?? null }
          : null;
        // Only a member can withdraw a consent: bare addresses get no unsubscribe link.
        const unsubscribeUrl = row.member_id !== null ? this.deps.unsubscribe.url(row.id) : null;
        const identifiers = member ? null : { email: row.email, msisdn: row.msisdn, app_token: row.push_token };
        const vars = mergeVars(ctx.defaults, member, ctx.properties, row.properties ?? {}, { unsubscribe_url: unsubscribeUrl ?? '' }, identifiers);
        try {
          return { row, content: await renderContent(ch, vars, { unsubscribeUrl: ctx.marketing ? unsubscribeUrl : null }), error: null };
        } catch (err) {
          return { row, content: null, error: `${RENDER_FAILED}: ${err instanceof Error ? err.message : String(err)}` };
        }
      }),
    );
  }

  /** `member.app_token` (the newest push token), looked up only when a template of the sending names it. */
  private async memberAppTokens(ctx: SendingContext, rows: ClaimedRow[]): Promise<Map<number, string> | null> {
    const uses = [...ctx.channels.values()].some((ch) => !(ch instanceof Error) && ch.usesAppToken);
    const ids = rows.flatMap((r) => (r.member_id !== null ? [r.member_id] : []));
    if (!uses || ids.length === 0) return null;
    const { rows: tokens } = await this.deps.db.query<{ member_id: number; token: string }>(
      'SELECT DISTINCT ON (member_id) member_id, token FROM member_push_tokens WHERE member_id = ANY($1::bigint[]) ORDER BY member_id, id DESC',
      [ids],
    );
    return new Map(tokens.map((t) => [Number(t.member_id), t.token]));
  }

  // -- shorten ----------------------------------------------------------------------------------

  private async shorten(ctx: SendingContext, items: Array<{ row: ClaimedRow; content: Content | null }>): Promise<void> {
    const fields = (c: Content): Array<[string, boolean]> =>
      c.kind === 'sms' ? [['text', false]] : c.kind === 'email' ? [['html', true], ['text', false]] : [['body', false], ['url', false]];
    const requests: LinkRequest[] = [];
    for (const { row, content } of items) {
      if (!content) continue;
      for (const [key, html] of fields(content)) {
        const text = (content as any)[key];
        if (typeof text !== 'string' || !text) continue;
        for (const url of findUrls(text)) requests.push({ dispatchId: ctx.trackInShortener ? row.id : null, url: targetOf(url, html) });
      }
    }
    if (requests.length === 0) return;
    const codes = await this.links.codesFor(ctx.club.id, ctx.id, requests);
    for (const { row, content } of items) {
      if (!content) continue;
      const dispatchId = ctx.trackInShortener ? row.id : null;
      for (const [key, html] of fields(content)) {
        const text = (content as any)[key];
        if (typeof text !== 'string' || !text) continue;
        (content as any)[key] = rewriteUrls(text, html, ctx.shortenerBaseUrl, (target) => codes.get(linkKey(dispatchId, target)));
      }
    }
  }

  // -- hand over + record -----------------------------------------------------------------------

  private async handOver(
    ctx: SendingContext,
    items: Array<{ row: ClaimedRow; content: Content | null; error: string | null }>,
    signal?: AbortSignal,
    grace?: AbortSignal,
  ): Promise<void> {
    const { db } = this.deps;
    const failed: Outcome[] = items.filter((i) => !i.content).map((i) => this.permanent(i.row, i.error ?? 'render failed'));
    const ready = items.filter((i) => i.content);
    const byChannel = new Map<Channel, OutgoingMessage[]>();
    for (const { row, content } of ready) {
      const list = byChannel.get(row.channel) ?? [];
      list.push({
        dispatchId: row.id,
        sendingId: ctx.id,
        channel: row.channel,
        marketing: ctx.marketing,
        recipient: { memberId: row.member_id, msisdn: row.msisdn, email: row.email, pushToken: row.push_token },
        content: content!,
      });
      byChannel.set(row.channel, list);
    }
    const rowsById = new Map(items.map((i) => [i.row.id, i.row]));

    // Transports are found before the status check, so that nothing (a configuration lookup
    // included) comes between the check and the hand-over.
    const transports = new Map<Channel, Transport | Error>();
    for (const channel of byChannel.keys()) {
      try {
        transports.set(channel, await this.deps.resolver.resolveTransport(ctx.club, channel));
      } catch (err) {
        transports.set(channel, err instanceof Error ? err : new Error(String(err)));
      }
    }

    if (byChannel.size === 0) {
      await this.record(failed);
      return;
    }
    const news: BatchNews = { handed: new Map(), burst: false, lastError: 'unknown', outage: null, sent: false };
    // Channels in parallel, each in groups committed one by one (outside the lock transaction, on
    // other connections of the pool: a group's results are durable before the next is handed over).
    const send = async () => {
      await this.record(failed);
      await Promise.all([...byChannel].map(([channel, msgs]) => this.sendGroups(ctx.id, transports.get(channel)!, msgs, rowsById, news, signal, grace)));
    };
    if (db.kind === 'postgres') {
      // Hold the sending's hand-over lock (shared) and its row (share lock) from the status check
      // to the last recorded group: a Cancel waits for this batch, and no later batch overtakes it.
      await db.transaction(async (tx) => {
        await tx.query(`SELECT pg_advisory_xact_lock_shared($1, ${HANDOVER_LOCK_ID})`, [SENDING_HANDOVER_LOCK, ctx.id]);
        const stop = await this.stopReason(tx, ctx.id, true);
        if (stop) {
          await this.record(items.map((i) => this.notHanded(i.row, stop)), tx);
          return;
        }
        await send();
      });
    } else {
      // PGlite is one process and one connection: a transaction held over the transport call
      // would stall every other query (and a transport using the store would deadlock). The
      // check runs right before the hand-over instead, with no await in between.
      const stop = await this.stopReason(db, ctx.id, false);
      if (stop) {
        await this.record(items.map((i) => this.notHanded(i.row, stop)));
        return;
      }
      await send();
    }
    await this.afterBatch(ctx.id, news);
  }

  /**
   * One channel's messages of a batch, RECORD_GROUP at a time: mark handed → transport → record.
   * Stops handing over (the rest goes back to `pending`, attempt refunded) on shutdown, on an
   * error burst, or while the transport backs off.
   */
  private async sendGroups(
    sendingId: number,
    transport: Transport | Error,
    msgs: OutgoingMessage[],
    rowsById: Map<number, ClaimedRow>,
    news: BatchNews,
    signal?: AbortSignal,
    grace?: AbortSignal,
  ): Promise<void> {
    const { health, settings } = this.deps;
    const name = transport instanceof Error ? null : transport.name;
    // The current group's handed_at was committed with the previous group's results.
    let marked = false;
    for (let i = 0; i < msgs.length; i += RECORD_GROUP) {
      const wait = name === null ? null : health.waitUntil(name);
      if (signal?.aborted || news.burst || wait !== null) {
        const later = wait === null ? null : new Date(wait);
        await this.record(msgs.slice(i).map((m) => this.putBack(rowsById.get(m.dispatchId)!, later)));
        if (wait !== null && name) news.outage ??= health.state(name) === 'up' ? null : (health.state(name) as TransportOutage);
        return;
      }
      const group = msgs.slice(i, i + RECORD_GROUP);
      if (!marked) await this.markHanded(group.map((m) => m.dispatchId));
      let results: SendResult[];
      try {
        if (transport instanceof Error) throw transport;
        const timeout = AbortSignal.timeout(Math.max(1000, settings.leaseMs / 2));
        results = await transport.send(group, grace ? AbortSignal.any([grace, timeout]) : timeout);
        if (results.length !== group.length) throw new Error(`transport ${transport.name} answered ${results.length} results for ${group.length} messages`);
      } catch (err) {
        // Shutdown aborted the call: the rows stay claimed and releaseClaims() counts them.
        if (grace?.aborted) throw new StoppedInFlight();
        // A transport that throws has not accepted the group: the provider is down (a transport
        // that cannot even be resolved is a plain retryable error: configuration, not an outage).
        const error = `transport error: ${err instanceof Error ? err.message : String(err)}`;
        results = group.map(() => (transport instanceof Error ? { status: 'retryable' as const, error } : { status: 'retryable' as const, error, outage: 'down' as const }));
      }
      const outage = results.find((r): r is Extract<SendResult, { status: 'retryable' }> => r.status === 'retryable' && r.outage !== undefined);
      let retryAt: number | null = null;
      if (outage && name) {
        retryAt = health.failed(name, outage.outage!, outage.error);
        news.outage = outage.outage!;
      } else if (name && results.some((r) => r.status === 'sent')) health.succeeded(name);
      if (results.some((r) => r.status === 'sent')) news.sent = true;
      const outcomes = group.map((m, k) => {
        const o = this.outcome(rowsById.get(m.dispatchId)!, results[k], retryAt);
        if (o.status === 'sent') o.content = handedContent(m.content);
        return o;
      });
      // Outage answers are about the provider, not the sending: they never count towards a burst.
      const counted = results.filter((r) => !(r.status === 'retryable' && r.outage));
      for (const r of counted) if (r.status !== 'sent') news.lastError = r.error;
      if (counted.length && this.bursts.record(sendingId, counted)) news.burst = true;
      // The next group is marked handed in the same statement that records this one.
      const next = msgs.slice(i + RECORD_GROUP, i + 2 * RECORD_GROUP);
      const goOn = next.length > 0 && !signal?.aborted && !news.burst && (name === null || health.waitUntil(name) === null);
      try {
        const handed = await this.record(outcomes, this.deps.db, goOn ? next.map((m) => m.dispatchId) : []);
        for (const [id, n] of handed) news.handed.set(id, (news.handed.get(id) ?? 0) + n);
      } catch (err) {
        if (err instanceof DatabaseUnavailable) this.unrecorded.push(...outcomes);
        throw err;
      }
      marked = goOn;
    }
  }

  /** Committed before the transport call: a dead worker's row with it may have gone out. */
  private async markHanded(ids: number[]): Promise<void> {
    await this.deps.db.query(`UPDATE dispatches SET handed_at = $2 WHERE id = ANY($1::bigint[]) AND status = 'sending' AND claimed_by = $3`, [
      ids,
      this.deps.clock(),
      this.deps.settings.workerId,
    ]);
  }

  /** A claimed row not handed over after all: `pending` again, its attempt refunded. */
  private putBack(row: ClaimedRow, nextAttemptAt: Date | null): Outcome {
    return { id: row.id, channel: row.channel, status: 'pending', providerId: null, error: null, nextAttemptAt, refund: 1 };
  }

  private async stopReason(q: Queryable, sendingId: number, lock: boolean): Promise<string | null> {
    const { rows } = await q.query<{ status: string; paused: boolean }>(
      `SELECT status, paused FROM sendings WHERE id = $1 ${lock ? 'FOR SHARE' : ''}`,
      [sendingId],
    );
    const s = rows[0];
    if (!s) return 'gone';
    if (s.status !== 'transmitting') return s.status;
    if (s.paused) this.sawPaused(sendingId);
    return s.paused ? 'paused' : null;
  }

  /** A claimed row that will not be handed over: cancelled with its sending, or put back. */
  private notHanded(row: ClaimedRow, reason: string): Outcome {
    if (reason === 'cancelled' || reason === 'gone') return this.cancelled(row, reason === 'gone' ? 'sending no longer exists' : null);
    if (reason === 'failed') return { id: row.id, channel: row.channel, status: 'failed', providerId: null, error: 'sending failed', nextAttemptAt: null, refund: 1 };
    return { id: row.id, channel: row.channel, status: 'pending', providerId: null, error: null, nextAttemptAt: null, refund: 1 };
  }

  private cancelled(row: ClaimedRow, error: string | null): Outcome {
    return { id: row.id, channel: row.channel, status: 'cancelled', providerId: null, error, nextAttemptAt: null, refund: 1 };
  }

  private permanent(row: ClaimedRow, error: string): Outcome {
    return { id: row.id, channel: row.channel, status: 'failed', providerId: null, error, nextAttemptAt: null, refund: 0 };
  }

  private outcome(row: ClaimedRow, r: SendResult, outageRetryAt: number | null = null): Outcome {
    const base = { id: row.id, channel: row.channel };
    if (r.status === 'sent') return { ...base, status: 'sent', providerId: r.providerId, error: null, nextAttemptAt: null, refund: 0 };
    if (r.status === 'permanent') {
      const address = row.channel === 'sms' ? row.msisdn : row.channel === 'email' ? row.email : row.push_token;
      return { ...base, status: r.gone ? 'undeliverable' : 'failed', providerId: null, error: r.error, nextAttemptAt: null, refund: 0, gone: r.gone ? { memberId: row.member_id, address } : undefined };
    }
    const now = this.deps.clock().getTime();
    // A transport outage costs no attempt: the row waits for the transport's backoff.
    if (r.outage) return { ...base, status: 'pending', providerId: null, error: r.error, nextAttemptAt: new Date(outageRetryAt ?? now + (r.retryAfterMs ?? 1000)), refund: 1 };
    // A throttled message ("not yet", retryAfterMs) does not use up an attempt.
    if (r.retryAfterMs !== undefined) return { ...base, status: 'pending', providerId: null, error: r.error, nextAttemptAt: new Date(now + r.retryAfterMs), refund: 1 };
    const { maxAttempts, retryBaseMs, retryMaxMs } = this.deps.settings;
    if (row.attempts >= maxAttempts) return { ...base, status: 'failed', providerId: null, error: `${r.error} (after ${row.attempts} attempts)`, nextAttemptAt: null, refund: 0 };
    return { ...base, status: 'pending', providerId: null, error: r.error, nextAttemptAt: new Date(now + retryDelayMs(row.attempts, retryBaseMs, retryMaxMs)), refund: 0 };
  }

  /**
   * Writes outcomes of rows this worker still holds (a row taken over after its lease expired
   * belongs to its new worker); `handNext` marks the next group handed over in the same statement.
   * Answers, per sending, how many members' dispatches the transport accepted (members_count).
   */
  private async record(all: Outcome[], q: Queryable = this.deps.db, handNext: number[] = []): Promise<MembersHanded> {
    const handed: MembersHanded = new Map();
    if (all.length === 0) {
      if (handNext.length) await this.markHanded(handNext);
      return handed;
    }
    const now = this.deps.clock();
    const columns = (os: Outcome[]) => [
      os.map((o) => o.id),
      os.map((o) => o.status),
      os.map((o) => o.providerId),
      os.map((o) => o.error),
      os.map((o) => o.nextAttemptAt),
      os.map((o) => o.refund),
      now,
      os.map((o) => o.content ?? null),
    ];
    const SET = `status = r.status,
              provider_id = COALESCE(r.provider_id, d.provider_id),
              error = r.error,
              attempts = d.attempts - r.refund,
              next_attempt_at = r.next_at,
              sent_at = CASE WHEN r.status = 'sent' THEN $7 ELSE d.sent_at END,
              content = CASE WHEN r.content IS NULL THEN d.content ELSE r.content::jsonb END,
              failed_at = CASE WHEN r.status IN ('failed', 'undeliverable') THEN $7 ELSE d.failed_at END,
              claimed_until = NULL, updated_at = $7`;
    const ROWS = `unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::int[], $8::text[])
                  AS r(id, status, provider_id, error, next_at, refund, content)`;
    type Written = { id: number; sending_id: number; status: string; recipient_key: string | null };
    const count = (rows: Written[]) => {
      for (const r of rows) {
        if (r.status === 'sent' && r.recipient_key?.startsWith('member:')) handed.set(r.sending_id, (handed.get(r.sending_id) ?? 0) + 1);
      }
    };
    if (all.length <= RECORD_GROUP) {
      // One group: one statement (and one commit) — its results, and the next group's mark.
      const { rows: mine } = await q.query<Written>(
        `WITH rec AS (
           UPDATE dispatches d SET ${SET}
             FROM ${ROWS}
            WHERE d.id = r.id AND d.status = 'sending' AND d.claimed_by = $9
           RETURNING d.id, d.sending_id, d.status, d.recipient_key),
         mark AS (
           UPDATE dispatches SET handed_at = $7 WHERE id = ANY($10::bigint[]) AND status = 'sending' AND claimed_by = $9)
         SELECT * FROM rec`,
        [...columns(all), this.deps.settings.workerId, handNext],
      );
      count(mine);
      const held = new Set(mine.map((r) => r.id));
      await this.recorded(q, all.filter((o) => held.has(o.id)));
      return handed;
    }
    // A whole batch: two statements on purpose — the status mix of dispatches changes faster than
    // the planner's statistics, and a filter on status inside the join below made it pick a
    // nested loop over the whole batch (quadratic). Looking the ids up by primary key first keeps
    // both plans linear.
    const { rows: mine } = await q.query<{ id: number }>(
      `SELECT id FROM dispatches WHERE id = ANY($1::bigint[]) AND status = 'sending' AND claimed_by = $2 FOR UPDATE`,
      [all.map((o) => o.id), this.deps.settings.workerId],
    );
    const held = new Set(mine.map((r) => r.id));
    const outcomes = all.filter((o) => held.has(o.id));
    if (outcomes.length === 0) return handed;
    // One statement for the whole batch. claimed_by stays: it says which worker handed it over.
    const { rows: written } = await q.query<Written>(
      `UPDATE dispatches d SET ${SET} FROM ${ROWS} WHERE d.id = r.id RETURNING d.id, d.sending_id, d.status, d.recipient_key`,
      columns(outcomes),
    );
    count(written);
    if (handNext.length) await this.markHanded(handNext);
    await this.recorded(q, outcomes);
    return handed;
  }

  /** After the write: dead addresses on their members, and the metrics. */
  private async recorded(q: Queryable, outcomes: Outcome[]): Promise<void> {
    const gone = outcomes.filter((o) => o.gone?.memberId && o.gone.address);
    if (gone.length) await this.markGone(q, gone);
    for (const o of outcomes) this.deps.metrics.dispatches.inc({ channel: o.channel, outcome: o.status === 'pending' ? 'retry' : o.status });
  }

  /**
   * members_count grows as members' dispatches are handed over (DECISIONS "Counters"). Outside the
   * batch's transaction: batches share a lock on the sending row and must not update it inside.
   */
  private async countMembers(handed: MembersHanded): Promise<void> {
    for (const [sendingId, n] of handed) {
      if (n > 0) await this.deps.db.query('UPDATE sendings SET members_count = members_count + $2 WHERE id = $1', [sendingId, n]);
    }
  }

  /**
   * A dead address (hard bounce, unregistered token) is recorded on the member through the members
   * domain, so that members-changes webhooks hear of it like of any other change.
   */
  private async markGone(q: Queryable, gone: Outcome[]): Promise<void> {
    for (const o of gone) await markAddressGone(q, { memberId: o.gone!.memberId!, channel: o.channel, address: o.gone!.address! });
  }
}

/**
 * What a dispatch shows as its `content` (DECISIONS "Dispatch"): the content as handed over —
 * merged, wrapped, links shortened — under the template's keys.
 */
function handedContent(c: Content): string {
  switch (c.kind) {
    case 'sms':
      return JSON.stringify({ body: c.text });
    case 'email':
      return JSON.stringify({ subject: c.subject, body: c.html, ...(c.preheader ? { preheader: c.preheader } : {}) });
    case 'push':
      return JSON.stringify({ subject: c.title, body: c.body, ...(c.url ? { uri: c.url } : {}), ...(c.image ? { image_url: c.image } : {}) });
  }
}

/** Exponential backoff with full jitter: attempt 1 waits up to base, then 2·base, 4·base… (capped). */
export function retryDelayMs(attempts: number, baseMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempts - 1));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}
