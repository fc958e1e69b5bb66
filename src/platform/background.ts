// The background worker slot: named periodic jobs run in the API process (embedded default) or
// in `hei worker` processes. A job's run never overlaps itself within a process; jobs that must
// run once across processes take their own advisory lock.
//
// A database outage (DatabaseUnavailable) is one event, not a stream of errors: the first failing
// run logs one warning, every job backs off (jittered, capped at 2 s), and the first run that
// succeeds afterwards logs one line with the outage's duration (DECISIONS "Faults").
import type { FastifyBaseLogger } from 'fastify';
import { DatabaseUnavailable } from '../db/connection.ts';

/** Backoff of a job while the database is unreachable: 100 ms doubling, capped, ×[0.5, 1]. */
export const OUTAGE_BACKOFF_MAX_MS = 2_000;
export function outageBackoffMs(failures: number): number {
  const ceiling = Math.min(OUTAGE_BACKOFF_MAX_MS, 100 * 2 ** Math.min(failures, 10));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

export interface BackgroundJob {
  name: string;
  /** Pause between runs when the last run found no work. */
  intervalMs: number;
  /** Returns true when it did work, so the next run follows at once. */
  run(signal: AbortSignal): Promise<boolean | void>;
}

export class BackgroundWorker {
  private readonly jobs: BackgroundJob[] = [];
  private readonly abort = new AbortController();
  private readonly loops: Promise<void>[] = [];
  private readonly stopHooks: Array<() => Promise<void>> = [];
  private started = false;
  /** When the current database outage started (ms), null when the database answers. */
  private outageSince: number | null = null;

  constructor(private readonly log: Pick<FastifyBaseLogger, 'error' | 'warn' | 'info'>) {}

  /** True while the jobs see the database as unreachable. */
  get databaseDown(): boolean {
    return this.outageSince !== null;
  }

  register(job: BackgroundJob): void {
    this.jobs.push(job);
    if (this.started) this.loops.push(this.loop(job));
  }

  get jobNames(): string[] {
    return this.jobs.map((j) => j.name);
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    for (const job of this.jobs) this.loops.push(this.loop(job));
  }

  /** Runs once the loops have ended on stop() (a domain releasing what its jobs still hold). */
  onStop(hook: () => Promise<void>): void {
    this.stopHooks.push(hook);
  }

  /** Stops taking new work, waits for the runs in progress, then runs the stop hooks. */
  async stop(): Promise<void> {
    this.abort.abort();
    await Promise.allSettled(this.loops);
    if (!this.started) return;
    this.started = false;
    for (const hook of this.stopHooks) {
      try {
        await hook();
      } catch (err) {
        this.log.warn({ err }, 'background stop hook failed');
      }
    }
  }

  private async loop(job: BackgroundJob): Promise<void> {
    const signal = this.abort.signal;
    let failures = 0;
    while (!signal.aborted) {
      let busy = false;
      let wait = job.intervalMs;
      try {
        busy = (await job.run(signal)) === true;
        failures = 0;
        this.databaseAnswered();
      } catch (err) {
        if (err instanceof DatabaseUnavailable) {
          this.databaseFailed(err);
          wait = outageBackoffMs(failures++);
        } else {
          this.log.error({ err, job: job.name }, 'background job failed');
        }
      }
      if (!busy && !signal.aborted) await sleep(wait, signal);
    }
  }

  private databaseFailed(err: DatabaseUnavailable): void {
    if (this.outageSince !== null) return;
    this.outageSince = Date.now();
    this.log.warn({ cause: String((err.cause as Error)?.message ?? err.cause) }, 'database unavailable: background jobs back off until it answers');
  }

  private databaseAnswered(): void {
    if (this.outageSince === null) return;
    const durationMs = Date.now() - this.outageSince;
    this.outageSince = null;
    this.log.info({ durationMs }, `database reachable again after ${(durationMs / 1000).toFixed(1)} s: background jobs resume`);
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
