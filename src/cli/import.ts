// `hei import members FILE.ndjson --club SLUG`: streams an NDJSON file of members into the store
// through the import service (same validation, bulks and processor as the API), with a progress bar.
import type { Command } from 'commander';
import { existsSync, statSync } from 'node:fs';
import cliProgress from 'cli-progress';
import { loadConfig } from '../platform/config.ts';
import { findClubBySlug } from '../platform/clubs.ts';
import { openStore } from '../runtime.ts';
import { importMembersFile } from '../members/import-file.ts';
import { UsageError } from './usage.ts';

const out = (s: string): void => void process.stdout.write(s + '\n');

export function registerImportCommands(program: Command): void {
  program
    .command('import')
    .description('bulk imports')
    .command('members')
    .description('import members from an NDJSON file (one member object per line, as in the imports API)')
    .argument('<file>', 'NDJSON file')
    .requiredOption('--club <slug>', 'loyalty club')
    .option('--operation <op>', 'create | update', 'create')
    .option('--identifier <type>', 'how update finds members: id | email | msisdn', 'id')
    .option('--concurrency <n>', 'bulks processed at the same time', '3')
    .option('--no-progress', 'no progress bar')
    .action(async (file: string, o) => {
      if (!['create', 'update'].includes(o.operation)) throw new UsageError(`--operation must be create or update, got "${o.operation}"`);
      if (!['id', 'email', 'msisdn'].includes(o.identifier)) throw new UsageError(`--identifier must be id, email or msisdn, got "${o.identifier}"`);
      if (!existsSync(file) || !statSync(file).isFile()) throw new UsageError(`no such file: ${file}`);
      const concurrency = Number(o.concurrency);
      if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 16) throw new UsageError('--concurrency must be 1..16');
      const { db } = await openStore(loadConfig());
      try {
        const club = await findClubBySlug(db, o.club);
        if (!club) throw new UsageError(`no loyalty club with slug "${o.club}" (see: hei clubs list)`);
        const showBar = o.progress && process.stderr.isTTY;
        const bar = new cliProgress.SingleBar(
          { format: 'importing |{bar}| {percentage}% | {members} members | {created} created | {updated} updated | {errors} errors | ETA {eta_formatted}', stream: process.stderr },
          cliProgress.Presets.shades_classic,
        );
        const size = statSync(file).size;
        if (showBar) bar.start(Math.max(size, 1), 0, { members: 0, created: 0, updated: 0, errors: 0 });
        const summary = await importMembersFile(db, club.id, file, {
          operation: o.operation,
          identifier: o.identifier,
          concurrency,
          onProgress: (p) => {
            if (showBar) bar.update(Math.min(p.bytesDone, size), { members: p.members, created: p.created, updated: p.updated, errors: p.errors });
          },
        });
        if (showBar) bar.stop();
        out(`import ${summary.importId}: ${summary.members} member(s) in ${summary.bulks} bulk(s), ${summary.seconds.toFixed(1)} s`);
        out(`  created ${summary.created}, updated ${summary.updated}, with errors ${summary.errors}`);
        for (const b of summary.badLines.slice(0, 20)) out(`  line ${b.line}: ${b.error}`);
        for (const e of summary.sampleErrors) out(`  ${e.key}: ${JSON.stringify(e.errors)}`);
        if (summary.failedBulks.length) {
          out(`  bulks failed after retries: ${summary.failedBulks.join(', ')}`);
          process.exitCode = 1;
        }
      } finally {
        await db.close();
      }
    });
}
