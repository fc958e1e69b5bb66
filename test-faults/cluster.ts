// A PostgreSQL cluster of the fault suite's own: initdb in a temporary folder owned by the
// `postgres` user (initdb and pg_ctl refuse root), a free port, its own socket directory. Never
// the machine's server. Stopped with `-m immediate` (a crash) and started again by the tests.
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

export interface Cluster {
  url: string;
  port: number;
  /** `pg_ctl stop -m immediate`: every connection dropped, no shutdown checkpoint. */
  crash(): void;
  start(): void;
  destroy(): void;
}

function pgBin(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  if (!versions.length) throw new Error('no PostgreSQL binaries under /usr/lib/postgresql');
  return join(root, versions[0], 'bin');
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export async function startCluster(): Promise<Cluster> {
  const bin = pgBin();
  const base = mkdtempSync(join(tmpdir(), 'hei-faults-pg-'));
  const data = join(base, 'data');
  const sockets = join(base, 'sockets');
  const asRoot = userInfo().uid === 0;
  const run = (cmd: string, args: string[]) => {
    const full = join(bin, cmd);
    if (asRoot) execFileSync('runuser', ['-u', 'postgres', '--', full, ...args], { stdio: 'pipe' });
    else execFileSync(full, args, { stdio: 'pipe' });
  };
  execFileSync('mkdir', ['-p', data, sockets]);
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
    for (const p of [base, data, sockets]) chownSync(p, uid, gid);
  }
  run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  const port = await freePort();
  // fsync off is safe here: an immediate stop kills processes, not the kernel's page cache. An
  // asynchronous commit is not: acknowledged commits would be lost by the crash we test.
  const options = `-p ${port} -k ${sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=100`;
  const start = () => run('pg_ctl', ['-D', data, '-o', options, '-l', join(base, 'log'), '-w', '-t', '60', 'start']);
  start();
  run('createdb', ['-h', sockets, '-p', String(port), '-U', 'postgres', 'hei']);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/hei`,
    port,
    crash: () => run('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']),
    start,
    destroy: () => {
      try {
        run('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']);
      } catch {
        // already stopped
      }
      rmSync(base, { recursive: true, force: true });
    },
  };
}
