// Delivery metrics on the app's registry: dispatch outcomes by channel (a counter, so that
// rate(hei_dispatches_total[1m]) is dispatches per second) and sending transitions.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export function createDeliveryMetrics(registry: Registry) {
  const existing = registry.getSingleMetric('hei_dispatches_total');
  if (existing) return (registry as any).__heiDelivery as DeliveryMetrics;
  const metrics = {
    dispatches: new Counter({
      name: 'hei_dispatches_total',
      help: 'Dispatches by channel and outcome (sent, retry, failed, undeliverable, cancelled, skipped, possible_duplicate)',
      labelNames: ['channel', 'outcome'] as const,
      registers: [registry],
    }),
    sendings: new Counter({
      name: 'hei_sendings_total',
      help: 'Sending transitions made by the delivery engine, by resulting status',
      labelNames: ['status'] as const,
      registers: [registry],
    }),
    batch: new Histogram({
      name: 'hei_delivery_batch_seconds',
      help: 'Time to claim, render, hand over and record one batch of dispatches',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    transportState: new Gauge({
      name: 'hei_transport_state',
      help: 'State of each transport as this process sees it: 1 for the current state (up, down, throttled, disk_full), 0 for the others',
      labelNames: ['transport', 'state'] as const,
      registers: [registry],
    }),
  };
  (registry as any).__heiDelivery = metrics;
  return metrics;
}
export type DeliveryMetrics = {
  dispatches: Counter<'channel' | 'outcome'>;
  sendings: Counter<'status'>;
  batch: Histogram<string>;
  transportState: Gauge<'transport' | 'state'>;
};
