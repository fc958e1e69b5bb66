// Message builders and a tiny engine stand-in (send, then retry what came back retryable).
import type { OutgoingMessage, SendResult, Transport } from '../../src/transports/transport.ts';

let nextId = 1;

export function sms(text: string, o: { to?: string; from?: { type: 'alphanumeric' | 'international'; value: string }; id?: number } = {}): OutgoingMessage {
  const id = o.id ?? nextId++;
  return {
    dispatchId: id,
    sendingId: 1,
    channel: 'sms',
    marketing: true,
    recipient: { msisdn: o.to ?? `47${String(90000000 + id)}` },
    content: { kind: 'sms', from: o.from ?? { type: 'alphanumeric', value: 'InfinityMal' }, text },
  };
}

export function email(o: Partial<{ to: string; subject: string; html: string; text: string; preheader: string | null; unsubscribeUrl: string | null; marketing: boolean; fromName: string | null }> = {}): OutgoingMessage {
  const id = nextId++;
  return {
    dispatchId: id,
    sendingId: 7,
    channel: 'email',
    marketing: o.marketing ?? true,
    recipient: { email: o.to ?? `member${id}@example.test` },
    content: {
      kind: 'email',
      from: { email: 'news@infinity-mall.test', name: o.fromName === undefined ? 'Infinity Mall' : o.fromName },
      subject: o.subject ?? 'Weekend offers',
      html: o.html ?? '<html><body><h1>Offers</h1><p>50% off</p></body></html>',
      text: o.text ?? 'Offers\n50% off',
      preheader: o.preheader === undefined ? 'Only this weekend' : o.preheader,
      unsubscribeUrl: o.unsubscribeUrl === undefined ? `https://hei.test/u/${id}` : o.unsubscribeUrl,
    },
  };
}

export function push(token: string, o: Partial<{ title: string; body: string; image: string | null; url: string | null; data: Record<string, string> | null }> = {}): OutgoingMessage {
  const id = nextId++;
  return {
    dispatchId: id,
    sendingId: 9,
    channel: 'push',
    marketing: true,
    recipient: { pushToken: token },
    content: { kind: 'push', title: o.title ?? 'Hei', body: o.body ?? 'New offers 😀', image: o.image ?? null, url: o.url ?? null, data: o.data ?? null },
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What the engine does: send, and send again what came back retryable, until all are final. */
export async function sendUntilFinal(t: Transport, batch: OutgoingMessage[], opts: { batchSize?: number; pauseMs?: number; maxRounds?: number } = {}) {
  const final = new Map<number, SendResult>();
  let retryable = 0;
  let queue = [...batch];
  for (let round = 0; queue.length && round < (opts.maxRounds ?? 200); round++) {
    const again: OutgoingMessage[] = [];
    for (let i = 0; i < queue.length; i += opts.batchSize ?? 50) {
      const chunk = queue.slice(i, i + (opts.batchSize ?? 50));
      const results = await t.send(chunk);
      results.forEach((r, k) => {
        if (r.status === 'retryable') {
          retryable++;
          again.push(chunk[k]);
        } else final.set(chunk[k].dispatchId, r);
      });
    }
    queue = again;
    if (queue.length) await sleep(opts.pauseMs ?? 100);
  }
  return { final, retryable, unfinished: queue.length };
}
