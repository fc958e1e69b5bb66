// A real SMTP server for the tests (smtp-server), parsing every message it accepts (mailparser).
import { SMTPServer } from 'smtp-server';
import { simpleParser, type ParsedMail } from 'mailparser';
import type { AddressInfo } from 'node:net';

export interface Peer {
  port: number;
  mails: ParsedMail[];
  /** Answer for RCPT TO by address: an SMTP code with message, or undefined to accept. */
  rcpt: (address: string) => { code: number; message: string } | undefined;
  connections: number;
  close(): Promise<void>;
}

export async function startSmtpPeer(port = 0): Promise<Peer> {
  const peer: Peer = { port: 0, mails: [], rcpt: () => undefined, connections: 0, close: async () => {} };
  const server = new SMTPServer({
    authOptional: false,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onConnect: (_s, cb) => {
      peer.connections++;
      cb();
    },
    onAuth: (auth, _s, cb) => (auth.username === 'mailer' && auth.password === 'pw' ? cb(null, { user: 'mailer' }) : cb(new Error('bad credentials'))),
    onRcptTo: (address, _s, cb) => {
      const answer = peer.rcpt(address.address);
      if (!answer) return cb();
      const err: any = new Error(answer.message);
      err.responseCode = answer.code;
      cb(err);
    },
    onData: (stream, _s, cb) => {
      simpleParser(stream).then((mail) => {
        peer.mails.push(mail);
        cb();
      }, cb);
    },
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  peer.port = (server.server.address() as AddressInfo).port;
  peer.close = () => new Promise((r) => server.close(() => r()));
  return peer;
}

