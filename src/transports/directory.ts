// Long-lived transports per (club, channel), built from the stored configuration and rebuilt
// when it changes (`hei transports set/reset`, noticed within `recheckMs`). Plugs into the
// delivery engine's resolver as a factory; a channel without configuration falls to the outbox.
import type { Database } from '../db/connection.ts';
import type { Channel, DeliveryReport, Transport } from './transport.ts';
import { loadClubTransports, type ClubTransportOptions } from './config.ts';
import { registerTransportFactory } from './registry.ts';

/** Where delivery reports of a club go: set once by the delivery engine (SMPP receipts, HTTP callbacks). */
export type ClubReportSink = (clubId: number, reports: DeliveryReport[]) => Promise<void>;
let reportSink: ClubReportSink | null = null;
export function setReportSink(sink: ClubReportSink | null): void {
  reportSink = sink;
}
export function getReportSink(): ClubReportSink | null {
  return reportSink;
}

interface Entry {
  version: string;
  checkedAt: number;
  transports: Partial<Record<Channel, Transport>>;
}

export class TransportDirectory {
  private clubs = new Map<number, Promise<Entry>>();

  private opts: Omit<ClubTransportOptions, 'onReports'> & { recheckMs?: number };

  constructor(
    private db: Database,
    opts: Omit<ClubTransportOptions, 'onReports'> & { recheckMs?: number } = {},
  ) {
    const env = process.env;
    const n = (v: string | undefined) => (v && Number.isFinite(Number(v)) ? Number(v) : undefined);
    this.opts = {
      ...opts,
      failover: {
        threshold: n(env.HEI_FAILOVER_THRESHOLD),
        cooldownMs: n(env.HEI_FAILOVER_COOLDOWN_SECONDS) !== undefined ? n(env.HEI_FAILOVER_COOLDOWN_SECONDS)! * 1000 : undefined,
        ...opts.failover,
      },
    };
  }

  /** The club's configured transport for the channel, or null (the caller's fallback: the outbox). */
  async get(clubId: number, channel: Channel): Promise<Transport | null> {
    let entry = this.clubs.get(clubId);
    const now = Date.now();
    if (entry) {
      const e = await entry;
      if (now - e.checkedAt < (this.opts.recheckMs ?? 5000)) return e.transports[channel] ?? null;
      e.checkedAt = now;
      if ((await this.version(clubId)) === e.version) return e.transports[channel] ?? null;
      this.clubs.delete(clubId);
      void Promise.allSettled(Object.values(e.transports).map((t) => t!.close()));
    }
    entry = this.clubs.get(clubId);
    if (!entry) {
      entry = this.load(clubId);
      this.clubs.set(clubId, entry);
      entry.catch(() => this.clubs.delete(clubId));
    }
    return (await entry).transports[channel] ?? null;
  }

  private async version(clubId: number): Promise<string> {
    const { rows } = await this.db.query<{ v: string | null }>(
      `SELECT string_agg(role || channel || updated_at::text, ',' ORDER BY channel, role) AS v FROM transport_configs WHERE loyalty_club_id = $1`,
      [clubId],
    );
    return rows[0]?.v ?? '';
  }

  private async load(clubId: number): Promise<Entry> {
    const version = await this.version(clubId);
    const onReports = async (reports: DeliveryReport[]) => {
      await reportSink?.(clubId, reports);
    };
    const transports = await loadClubTransports(this.db, clubId, { ...this.opts, onReports });
    return { version, checkedAt: Date.now(), transports };
  }

  async close(): Promise<void> {
    const entries = await Promise.allSettled([...this.clubs.values()]);
    this.clubs.clear();
    await Promise.allSettled(entries.flatMap((e) => (e.status === 'fulfilled' ? Object.values(e.value.transports).map((t) => t!.close()) : [])));
  }
}

/**
 * Registers the configured transports with the delivery engine's resolver. Call once per process
 * where the database is at hand (the engine's start); the returned function unregisters and closes.
 */
export function registerClubTransports(db: Database, opts: ConstructorParameters<typeof TransportDirectory>[1] = {}): () => Promise<void> {
  const directory = new TransportDirectory(db, opts);
  const unregister = registerTransportFactory((club, channel) => directory.get(club.id, channel));
  return async () => {
    unregister();
    await directory.close();
  };
}
