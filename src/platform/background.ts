// The background worker slot: named periodic jobs run in the API process (embedded default) or
// in `hei worker` processes. A job's run never overlaps itself within a process; jobs that must
// run once across processes take their own advisory lock.
import type { FastifyBaseLogger } from 'fastify';

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
  private started = false;

  constructor(private readonly log: Pick<FastifyBaseLogger, 'error' | 'info'>) {}

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

  /** Stops taking new work and waits for the runs in progress. */
  async stop(): Promise<void> {
    this.abort.abort();
    await Promise.allSettled(this.loops);
  }

  private async loop(job: BackgroundJob): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      let busy = false;
      try {
        busy = (await job.run(signal)) === true;
      } catch (err) {
        this.log.error({ err, job: job.name }, 'background job failed');
      }
      if (!busy && !signal.aborted) await sleep(job.intervalMs, signal);
    }
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
