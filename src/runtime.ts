// Opening the store for a process: the embedded PGlite in the data folder (one process at a
// time, guarded by a pid file) or the PostgreSQL server of DATABASE_URL.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDatabase, type Database } from './db/connection.ts';
import { migrate } from './db/migrate.ts';
import type { Config } from './platform/config.ts';

export class EmbeddedInUse extends Error {}

function pidFile(config: Config) {
  return join(config.dataDir, 'hei.pid');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Opens and migrates the store. With PGlite, takes the data folder for this process. */
export async function openStore(config: Config, opts: { holdEmbedded?: boolean } = {}): Promise<{ db: Database; release: () => void }> {
  if (!config.databaseUrl) {
    mkdirSync(config.dataDir, { recursive: true });
    const file = pidFile(config);
    if (existsSync(file)) {
      const pid = Number(readFileSync(file, 'utf8'));
      if (pid && pid !== process.pid && alive(pid)) {
        throw new EmbeddedInUse(
          `The embedded database in ${config.dataDir} is in use by process ${pid} (hei serve). Stop it first, or set DATABASE_URL to use a PostgreSQL server.`,
        );
      }
    }
    if (opts.holdEmbedded) writeFileSync(file, String(process.pid));
  }
  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: join(config.dataDir, 'pglite') });
  await migrate(db);
  const release = () => {
    if (!config.databaseUrl && opts.holdEmbedded) rmSync(pidFile(config), { force: true });
  };
  return { db, release };
}
