// A transport that accepts everything and keeps nothing: measures the engine alone (benchmarks).
import type { OutgoingMessage, SendResult, Transport } from './transport.ts';

export class NullTransport implements Transport {
  readonly name = 'null';
  sent = 0;

  async send(batch: OutgoingMessage[]): Promise<SendResult[]> {
    this.sent += batch.length;
    return batch.map((m) => ({ status: 'sent' as const, providerId: `null-${m.dispatchId}` }));
  }

  async close(): Promise<void> {}
}
