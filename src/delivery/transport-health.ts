// Per-transport backoff (DECISIONS "Faults"): a transport that is down, throttling or out of disk
// space is left alone for a jittered, doubling pause (0.5 s … 2 s: a probe of one group, cheap; recovery is seen within seconds) instead of being handed every
// batch; the dispatches wait without using up an attempt. One log line per state change, and the
// state in `/metrics` (hei_transport_state).
import type { TransportOutage } from '../transports/transport.ts';
import type { DeliveryMetrics } from './metrics.ts';

export type TransportState = 'up' | TransportOutage;
const STATES: readonly TransportState[] = ['up', 'down', 'throttled', 'disk_full'];

export const TRANSPORT_BACKOFF_MIN_MS = 500;
export const TRANSPORT_BACKOFF_MAX_MS = 2_000;

interface Health {
  state: TransportState;
  since: number;
  failures: number;
  /** No batch before this time (ms). */
  retryAt: number;
}

export class TransportHealth {
  private readonly byName = new Map<string, Health>();

  constructor(
    private readonly deps: {
      now: () => number;
      metrics: Pick<DeliveryMetrics, 'transportState'>;
      log: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
    },
  ) {}

  state(name: string): TransportState {
    return this.byName.get(name)?.state ?? 'up';
  }

  /** When the transport may be tried again (ms), or null when it can be used now. */
  waitUntil(name: string): number | null {
    const h = this.byName.get(name);
    if (!h || h.state === 'up' || h.retryAt <= this.deps.now()) return null;
    return h.retryAt;
  }

  /** The transport could not take a group: back off. Returns when to try again (ms). */
  failed(name: string, outage: TransportOutage, error: string): number {
    const now = this.deps.now();
    const h = this.byName.get(name) ?? { state: 'up' as TransportState, since: now, failures: 0, retryAt: 0 };
    const ceiling = Math.min(TRANSPORT_BACKOFF_MAX_MS, TRANSPORT_BACKOFF_MIN_MS * 2 ** Math.min(h.failures, 10));
    h.failures++;
    h.retryAt = now + Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    if (h.state !== outage) {
      this.deps.log.warn({ transport: name, state: outage, was: h.state, error }, `transport ${name} is ${outage}: backing off`);
      h.state = outage;
      h.since = now;
      this.show(name, outage);
    }
    this.byName.set(name, h);
    return h.retryAt;
  }

  /** The transport took messages again. */
  succeeded(name: string): void {
    const h = this.byName.get(name);
    if (!h || h.state === 'up') {
      if (!h) this.show(name, 'up');
      if (!h) this.byName.set(name, { state: 'up', since: this.deps.now(), failures: 0, retryAt: 0 });
      return;
    }
    const durationMs = this.deps.now() - h.since;
    this.deps.log.info({ transport: name, was: h.state, durationMs }, `transport ${name} is up again after ${(durationMs / 1000).toFixed(1)} s`);
    this.byName.set(name, { state: 'up', since: this.deps.now(), failures: 0, retryAt: 0 });
    this.show(name, 'up');
  }

  private show(name: string, current: TransportState): void {
    for (const s of STATES) this.deps.metrics.transportState.set({ transport: name, state: s }, s === current ? 1 : 0);
  }
}
