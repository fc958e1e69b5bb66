// The default transport: every message becomes one JSON line appended to `<data>/outbox.ndjson`,
// so `npm start` sends with no provider configured and tests can read what was "sent".
//
// Write policy: a batch is one append (one write(2) on an O_APPEND descriptor, so lines from
// several workers or processes never interleave) followed by one fsync. Only after the fsync are
// the messages reported `sent`: a crash before it leaves them unreported, and the engine treats
// them as possibly sent (counted, see docs/decisions.md "Delivery").
import { mkdirSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { OutgoingMessage, SendResult, Transport } from './transport.ts';

export const OUTBOX_FILE = 'outbox.ndjson';

export function outboxPath(dataDir: string): string {
  return join(dataDir, OUTBOX_FILE);
}

/** One outbox line. `at` is when it was written. */
export interface OutboxLine {
  at: string;
  dispatch_id: number;
  sending_id: number;
  channel: OutgoingMessage['channel'];
  marketing: boolean;
  recipient: OutgoingMessage['recipient'];
  content: OutgoingMessage['content'];
}

export class OutboxTransport implements Transport {
  readonly name = 'outbox';
  private handle: Promise<FileHandle> | null = null;
  // Batches from concurrent loops of one process are written one after the other.
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    readonly path: string,
    private readonly opts: { fsync?: boolean } = {},
  ) {}

  private file(): Promise<FileHandle> {
    if (!this.handle) {
      mkdirSync(dirname(this.path), { recursive: true });
      this.handle = (async () => {
        const fh = await open(this.path, 'a+');
        // A process killed in the middle of a write can leave a torn last line: end it, so that
        // the next line starts on its own (readers skip the torn one).
        const { size } = await fh.stat();
        if (size > 0) {
          const last = Buffer.alloc(1);
          await fh.read(last, 0, 1, size - 1);
          if (last[0] !== 0x0a) await fh.appendFile('\n');
        }
        return fh;
      })();
      this.handle.catch(() => (this.handle = null));
    }
    return this.handle;
  }

  send(batch: OutgoingMessage[]): Promise<SendResult[]> {
    const run = this.tail.then(() => this.write(batch));
    this.tail = run.catch(() => {});
    return run;
  }

  private async write(batch: OutgoingMessage[]): Promise<SendResult[]> {
    if (batch.length === 0) return [];
    const at = new Date().toISOString();
    let text = '';
    for (const m of batch) {
      const line: OutboxLine = { at, dispatch_id: m.dispatchId, sending_id: m.sendingId, channel: m.channel, marketing: m.marketing, recipient: m.recipient, content: m.content };
      text += JSON.stringify(line) + '\n';
    }
    let fh: FileHandle | null = null;
    let sizeBefore: number | null = null;
    try {
      fh = await this.file();
      sizeBefore = (await fh.stat()).size;
      await fh.appendFile(text, 'utf8');
      if (this.opts.fsync !== false) await fh.datasync();
    } catch (err) {
      // A write cut short (disk full) leaves no partial line: the file goes back to its size
      // before this batch (batches of this process are written one after the other).
      if (fh && sizeBefore !== null) await fh.truncate(sizeBefore).catch(() => {});
      // A full disk or a vanished folder is the outbox being unavailable, not the messages: the
      // engine backs off and the sending waits (DECISIONS "Faults").
      const code = (err as NodeJS.ErrnoException)?.code;
      const outage = code === 'ENOSPC' || code === 'EDQUOT' ? ('disk_full' as const) : ('down' as const);
      const error = `outbox write failed: ${err instanceof Error ? err.message : String(err)}`;
      const h = this.handle;
      this.handle = null;
      if (h) void h.then((x) => x.close()).catch(() => {});
      return batch.map(() => ({ status: 'retryable' as const, error, outage }));
    }
    return batch.map((m) => ({ status: 'sent' as const, providerId: `outbox-${m.dispatchId}` }));
  }

  async close(): Promise<void> {
    await this.tail;
    const h = this.handle;
    this.handle = null;
    if (h) await (await h).close().catch(() => {});
  }
}

/** Reads an outbox file back (tests, tooling). Missing file = nothing sent; a torn line is skipped. */
export async function readOutbox(path: string): Promise<OutboxLine[]> {
  const { readFile } = await import('node:fs/promises');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err: any) {
    if (err?.code === 'ENOENT') return [];
    throw err;
  }
  const out: OutboxLine[] = [];
  for (const l of text.split('\n')) {
    if (l.trim() === '') continue;
    try {
      out.push(JSON.parse(l) as OutboxLine);
    } catch {
      // the end of a write cut short by a crash: that message was never reported sent
    }
  }
  return out;
}
