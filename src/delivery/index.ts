// The delivery domain: the engine's background jobs (scheduler, preparation, transmission) and
// the shortener's public route. Registered once in src/app.ts DOMAINS.
import { stripExpiredDispatches } from '../messaging/personal-data.ts';
import type { Database } from '../db/connection.ts';
import type { Config } from '../platform/config.ts';
import type { DomainModule, Services } from '../platform/services.ts';
import { shortenerRoutes } from '../shortener/routes.ts';
import { UnsubscribeLinks, unsubscribeRoutes } from './unsubscribe.ts';
import { OutboxTransport, outboxPath } from '../transports/outbox.ts';
import { registerClubTransports, setReportSink } from '../transports/directory.ts';
import { createTransportResolver, type TransportResolver } from '../transports/registry.ts';
import { loadDeliverySettings, systemClock, type Clock, type DeliverySettings } from './config.ts';
import { createDeliveryMetrics, type DeliveryMetrics } from './metrics.ts';
import { claimPreparation, prepareSending, type PrepareOutcome } from './prepare.ts';
import { applyWaitingReports, recordDeliveryReports } from './reports.ts';
import { schedulerTick, type SchedulerTickResult } from './scheduler.ts';
import { Transmitter } from './transmit.ts';
import { sleep } from '../platform/background.ts';
import { WorkerPresence } from './presence.ts';
import { TransportHealth } from './transport-health.ts';

export interface EngineOptions {
  db: Database;
  config: Config;
  metrics: DeliveryMetrics;
  log: { error(obj: object, msg: string): void; warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
  settings?: Partial<DeliverySettings>;
  clock?: Clock;
  resolver?: TransportResolver;
}

/** The engine of one process. Every step is also callable alone (tests, benchmarks). */
export class DeliveryEngine {
  readonly settings: DeliverySettings;
  clock: Clock;
  private resolver: TransportResolver;
  readonly transmitter: Transmitter;
  /** This process's liveness lock: its claims are taken over at once when it dies. */
  readonly presence: WorkerPresence;
  readonly health: TransportHealth;

  constructor(private readonly opts: EngineOptions) {
    this.settings = { ...loadDeliverySettings(), ...opts.settings };
    this.clock = opts.clock ?? systemClock;
    this.resolver =
      opts.resolver ?? createTransportResolver(opts.config, { fallback: new OutboxTransport(outboxPath(opts.config.dataDir), { fsync: this.settings.outboxFsync }) });
    this.presence = new WorkerPresence(opts.db, this.settings.workerId);
    this.health = new TransportHealth({ now: () => this.clock().getTime(), metrics: opts.metrics, log: opts.log });
    this.transmitter = new Transmitter({
      health: this.health,
      db: opts.db,
      settings: this.settings,
      clock: () => this.clock(),
      // Indirect, so that tests and benchmarks can swap the transports of a running engine.
      resolver: { resolveTransport: (club, channel) => this.resolver.resolveTransport(club, channel), close: async () => {} },
      metrics: opts.metrics,
      shortenerBaseUrl: opts.config.shortenerBaseUrl,
      unsubscribe: new UnsubscribeLinks(opts.config.publicBaseUrl),
      log: opts.log,
    });
  }

  /** Replaces how transports are found (tests: a scripted transport; benchmarks: the null one). */
  useResolver(resolver: TransportResolver): void {
    const old = this.resolver;
    this.resolver = resolver;
    void old.close();
  }

  /**
   * Due sendings → preparing; 20 minutes late → failed; paused and not resumed in time → failed.
   * A tick skips while another process holds the scheduler lock; `waitForLock` (tests, tools that
   * need this tick to have happened) tries again until it ran.
   */
  async schedule(opts: { waitForLock?: boolean } = {}): Promise<boolean> {
    let r = await this.schedulerTick();
    for (let i = 0; opts.waitForLock && !r.ran && i < 200; i++) {
      await sleep(25);
      r = await this.schedulerTick();
    }
    return r.started.length + r.failed.length + r.pauseExpired.length > 0;
  }

  private async schedulerTick(): Promise<SchedulerTickResult> {
    const r = await schedulerTick(this.opts.db, this.settings, () => this.clock());
    if (r.failed.length) {
      this.opts.metrics.sendings.inc({ status: 'failed' }, r.failed.length);
      this.opts.log.warn({ sendings: r.failed }, 'sendings failed: not started within 20 minutes of their time');
    }
    if (r.started.length) this.opts.metrics.sendings.inc({ status: 'preparing' }, r.started.length);
    if (r.pauseExpired.length) {
      this.opts.metrics.sendings.inc({ status: 'failed' }, r.pauseExpired.length);
      this.opts.log.warn({ sendings: r.pauseExpired }, 'sendings failed: paused and not resumed in time');
    }
    return r;
  }

  /** Prepares one claimed sending; null when none is waiting. */
  async prepareOne(): Promise<PrepareOutcome | null> {
    await this.presence.ensure();
    const id = await claimPreparation(this.opts.db, this.settings, () => this.clock(), await this.transmitter.deadWorkers());
    if (id === null) return null;
    // The lease is renewed after every chunk, so a long preparation keeps its sending.
    const heartbeat = async () => {
      await this.opts.db.query(`UPDATE sendings SET prepare_claimed_until = $2 WHERE id = $1 AND status = 'preparing'`, [
        id,
        new Date(this.clock().getTime() + this.settings.leaseMs),
      ]);
    };
    const out = await prepareSending(this.opts.db, id, () => this.clock(), { parallel: this.settings.prepareParallel, heartbeat });
    this.opts.metrics.sendings.inc({ status: out.status });
    if (out.skippedCount) this.opts.metrics.dispatches.inc({ channel: 'none', outcome: 'skipped' }, out.skippedCount);
    return out;
  }

  async transmit(signal?: AbortSignal): Promise<boolean> {
    await this.presence.ensure();
    return this.transmitter.tick(signal);
  }

  /** Shutdown: what this process still holds goes back (dispatches, its presence lock). */
  async release(): Promise<void> {
    const n = await this.transmitter.releaseClaims();
    if (n) this.opts.log.info({ dispatches: n }, 'released the dispatches claimed by this worker');
    await this.opts.db.query(`UPDATE sendings SET prepare_claimed_until = NULL WHERE status = 'preparing' AND prepare_claimed_by = $1`, [this.settings.workerId]);
    await this.presence.release();
  }

  /** Runs every step until nothing is left to do (tests, one-shot tools). */
  async drain(opts: { maxRounds?: number } = {}): Promise<void> {
    for (let i = 0; i < (opts.maxRounds ?? 10_000); i++) {
      // A tick that found the scheduler lock taken (another process's tick, e.g. test files
      // sharing one PostgreSQL database) has not looked yet: not "nothing to do".
      const tick = await this.schedulerTick();
      if (!tick.ran) await new Promise((r) => setTimeout(r, 5));
      const a = !tick.ran || tick.started.length + tick.failed.length + tick.pauseExpired.length > 0;
      const b = (await this.prepareOne()) !== null;
      const c = await this.transmit();
      if (!a && !b && !c) return;
    }
  }

  async close(): Promise<void> {
    await this.presence.release().catch(() => {});
    await this.resolver.close();
  }
}

/** Rows stripped per run of the retention job. */
const RETENTION_BATCH = 1000;

const engines = new WeakMap<Services, DeliveryEngine>();

/** The engine of an app (`deliveryEngineOf(app.hei)`), for tests and tools. */
export function deliveryEngineOf(services: Services): DeliveryEngine {
  const e = engines.get(services);
  if (!e) throw new Error('delivery module not registered');
  return e;
}

export const deliveryModule: DomainModule = (app, services) => {
  shortenerRoutes(app, services);
  unsubscribeRoutes(app, services);
  const engine = new DeliveryEngine({ db: services.db, config: services.config, metrics: createDeliveryMetrics(services.metrics.registry), log: services.log });
  engines.set(services, engine);
  // The transports configured per club (`hei transports set`) answer before the outbox; their
  // delivery reports come back to the dispatches.
  const unregisterTransports = registerClubTransports(services.db);
  const metrics = createDeliveryMetrics(services.metrics.registry);
  setReportSink((clubId, reports) => recordDeliveryReports(services.db, clubId, reports, metrics).then(() => {}));
  const poll = engine.settings.pollMs;
  // Three jobs, so that a long preparation never delays the scheduler or a transmission.
  services.worker.register({ name: 'delivery.scheduler', intervalMs: poll, run: () => engine.schedule() });
  services.worker.register({ name: 'delivery.prepare', intervalMs: poll, run: async () => (await engine.prepareOne()) !== null });
  services.worker.register({ name: 'delivery.transmit', intervalMs: poll, run: (signal) => engine.transmit(signal) });
  services.worker.onStop(() => engine.release());
  services.worker.register({ name: 'delivery.waiting-reports', intervalMs: 1_000, run: async () => (await applyWaitingReports(services.db, metrics)) > 0 });
  // Retention of personal data in dispatches: one bounded batch per run, at once again while full.
  services.worker.register({ name: 'messaging.retention', intervalMs: 60_000, run: async () => (await stripExpiredDispatches(services.db, engine.clock(), RETENTION_BATCH)) >= RETENTION_BATCH });
  app.addHook('onClose', async () => {
    await unregisterTransports();
    await engine.close();
  });
};
