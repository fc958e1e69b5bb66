// The `hei` command line.
import { Command, CommanderError } from 'commander';
import { loadConfig } from '../platform/config.ts';
import { openStore, EmbeddedInUse } from '../runtime.ts';
import { serve, runWorker } from './serve.ts';
import { registerAdminCommands } from './admin.ts';
import { UsageError } from './usage.ts';
import { registerImportCommands } from './import.ts';
import { registerTransportCommands } from './transports.ts';


const program = new Command('hei')
  .description('Hei — the MPC platform API for loyalty clubs')
  .showHelpAfterError()
  .exitOverride();

program
  .command('serve')
  .description('serve the API, the background worker and the docs (embedded database unless DATABASE_URL is set)')
  .option('--no-worker', 'do not run background jobs in this process')
  .option('--no-seed', 'do not create the demo club in an empty database')
  .action(async (opts) => serve({ worker: opts.worker, seed: opts.seed }));

program
  .command('worker')
  .description('run background jobs only (needs DATABASE_URL; run as many as you like)')
  .action(runWorker);

program
  .command('migrate')
  .description('apply pending database migrations')
  .action(async () => {
    const { db } = await openStore(loadConfig());
    await db.close();
    process.stdout.write('migrations applied\n');
  });

registerAdminCommands(program);
registerImportCommands(program);
registerTransportCommands(program);

export async function main(argv: string[]): Promise<void> {
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    if (err instanceof UsageError || err instanceof EmbeddedInUse) {
      process.stderr.write(`hei: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`hei: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
