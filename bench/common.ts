// Shared by benchmarks: a PostgreSQL database of their own, and printing.
import pg from 'pg';
import { openPostgres, type Database } from '../src/db/connection.ts';
import { migrate } from '../src/db/migrate.ts';

/** DATABASE_URL, or a fresh database `name` on the local server (created when missing). */
export async function benchDatabase(name: string): Promise<{ db: Database; url: string }> {
  let url = process.env.DATABASE_URL;
  if (!url) {
    const admin = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/postgres' });
    await admin.connect();
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE "${name.replace(/"/g, '')}"`);
    await admin.end();
    url = `postgres://postgres@127.0.0.1:5432/${name}`;
  }
  const db = openPostgres(url, 20);
  await migrate(db);
  return { db, url };
}

export const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

export function table(rows: Array<Record<string, string | number>>): void {
  const keys = Object.keys(rows[0]);
  const widths = keys.map((k) => Math.max(k.length, ...rows.map((r) => String(r[k]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padStart(widths[i])).join('  ');
  process.stdout.write(line(keys) + '\n' + rows.map((r) => line(keys.map((k) => String(r[k])))).join('\n') + '\n');
}
