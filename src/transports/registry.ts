// Which transport carries a club's messages on a channel. Adapters plug in a factory; when no
// factory claims (club, channel), the file outbox does, so a fresh install sends with no provider.
import type { LoyaltyClub } from '../platform/context.ts';
import type { Config } from '../platform/config.ts';
import type { Channel, Transport } from './transport.ts';
import { OutboxTransport, outboxPath } from './outbox.ts';

/**
 * Returns the transport for (club, channel), or null to let the next factory (finally the outbox)
 * answer. A factory keeps its own connections: it should hand back the same instance for the
 * same configuration, since the engine calls it for every batch.
 */
export type TransportFactory = (club: LoyaltyClub, channel: Channel, config: Config) => Transport | null | Promise<Transport | null>;

const factories: TransportFactory[] = [];

/** Adapters (src/transports/*) register here, once, at import time. Last registered is asked first. */
export function registerTransportFactory(factory: TransportFactory): () => void {
  factories.unshift(factory);
  return () => {
    const i = factories.indexOf(factory);
    if (i >= 0) factories.splice(i, 1);
  };
}

export interface TransportResolver {
  resolveTransport(club: LoyaltyClub, channel: Channel): Promise<Transport>;
  /** Closes every transport it handed out (process shutdown). */
  close(): Promise<void>;
}

/**
 * The resolver of one process. `fallback` replaces the outbox (benchmarks use the null transport);
 * `only` bypasses the factories altogether (tests).
 */
export function createTransportResolver(config: Config, opts: { fallback?: Transport; only?: Transport } = {}): TransportResolver {
  const fallback = opts.fallback ?? new OutboxTransport(outboxPath(config.dataDir));
  const handedOut = new Set<Transport>([fallback]);
  return {
    async resolveTransport(club, channel) {
      if (opts.only) return opts.only;
      for (const factory of factories) {
        const t = await factory(club, channel, config);
        if (t) {
          handedOut.add(t);
          return t;
        }
      }
      return fallback;
    },
    async close() {
      await Promise.allSettled([...handedOut].map((t) => t.close()));
      if (opts.only) await opts.only.close();
    },
  };
}
