// A real SMPP server for the tests and the bench (the `smpp` package in server mode): checks the
// bind, records every submit_sm, answers with configurable errors and sends delivery receipts.
import smpp from 'smpp';
import type { AddressInfo } from 'node:net';

export interface Submitted {
  seq: number;
  messageId: string;
  sourceTon: number;
  sourceNpi: number;
  source: string;
  destination: string;
  dataCoding: number;
  esmClass: number;
  registeredDelivery: number;
  /** Concatenation UDH octets (05 00 03 ref total seq) or null. */
  udh: Buffer | null;
  text: string;
}

export interface SmppPeerOptions {
  systemId?: string;
  password?: string;
  /** command_status for a submit (0 = accept). */
  status?: (s: Omit<Submitted, 'messageId'>, n: number) => number;
  /** Receipt stat to send after an accepted submit ('DELIVRD', 'UNDELIV'…), or null for none. */
  receipt?: (s: Submitted) => string | null;
  /** Keep no record (bench). */
  record?: boolean;
  /** Answer each submit after this many ms (to observe the client's window). */
  delayMs?: number;
}

export interface SmppPeer {
  port: number;
  submitted: Submitted[];
  binds: number;
  count: number;
  enquireLinks: number;
  /** Most submit_sm received and not yet answered at one time. */
  maxOutstanding: number;
  /** Stops listening and drops every session. */
  down(): Promise<void>;
  /** Listens again on the same port. */
  up(): Promise<void>;
  close(): Promise<void>;
  options: SmppPeerOptions;
}

export async function startSmppPeer(options: SmppPeerOptions = {}, port = 0): Promise<SmppPeer> {
  const systemId = options.systemId ?? 'hei';
  const password = options.password ?? 'secret';
  let next = 1;
  let outstanding = 0;
  const peer: SmppPeer = {
    port: 0,
    submitted: [],
    binds: 0,
    count: 0,
    enquireLinks: 0,
    maxOutstanding: 0,
    options,
    down: async () => {
      for (const s of [...server.sessions]) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
    up: () => listen(peer.port),
    close: async () => {
      for (const s of [...server.sessions]) s.destroy();
      if (server.listening) await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const server = smpp.createServer((session: any) => {
    session.on('error', () => {});
    session.on('bind_transceiver', (pdu: any) => {
      if (pdu.system_id !== systemId || pdu.password !== password) {
        session.send(pdu.response({ command_status: smpp.ESME_RBINDFAIL }));
        return session.close();
      }
      peer.binds++;
      session.send(pdu.response({ system_id: 'peer' }));
    });
    session.on('enquire_link', (pdu: any) => {
      peer.enquireLinks++;
      session.send(pdu.response());
    });
    session.on('unbind', (pdu: any) => {
      session.send(pdu.response());
      session.close();
    });
    session.on('submit_sm', (pdu: any) => {
      if (options.delayMs) {
        peer.maxOutstanding = Math.max(peer.maxOutstanding, ++outstanding);
        setTimeout(() => {
          outstanding--;
          answer(session, pdu);
        }, options.delayMs);
      } else answer(session, pdu);
    });
  });
  function answer(session: any, pdu: any) {
    {
      const n = peer.count++;
      const sm = pdu.short_message ?? {};
      const base = {
        seq: n,
        sourceTon: pdu.source_addr_ton,
        sourceNpi: pdu.source_addr_npi,
        source: pdu.source_addr,
        destination: pdu.destination_addr,
        dataCoding: pdu.data_coding,
        esmClass: pdu.esm_class,
        registeredDelivery: pdu.registered_delivery,
        udh: sm.udh?.[0] ?? null,
        text: typeof sm.message === 'string' ? sm.message : String(sm.message ?? ''),
      };
      const status = options.status?.(base, n) ?? 0;
      if (status !== 0) return session.send(pdu.response({ command_status: status }));
      const messageId = `m${next++}`;
      const s = { ...base, messageId };
      if (options.record !== false) peer.submitted.push(s);
      session.send(pdu.response({ message_id: messageId }));
      const stat = options.receipt?.(s);
      if (stat) {
        setImmediate(() =>
          session.deliver_sm({
            source_addr: s.destination,
            destination_addr: s.source,
            esm_class: 0x04,
            short_message: `id:${messageId} sub:001 dlvrd:${stat === 'DELIVRD' ? '001' : '000'} submit date:2611270600 done date:2611270601 stat:${stat} err:${stat === 'DELIVRD' ? '000' : '001'} text:`,
          }),
        );
      }
    }
  }
  const listen = (p: number) => new Promise<void>((resolve) => server.listen(p, '127.0.0.1', () => resolve()));
  await listen(port);
  peer.port = (server.address() as AddressInfo).port;
  return peer;
}
