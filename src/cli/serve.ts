// `hei serve` (what `npm start` runs) and `hei worker`.
import { buildApp } from '../app.ts';
import { loadConfig } from '../platform/config.ts';
import { allPermits } from '../platform/permits.ts';
import { openStore } from '../runtime.ts';
import { installProcessGuard } from '../platform/process-guard.ts';
import { startMetricsServer } from '../platform/metrics.ts';
import { oneClickWarning } from '../delivery/unsubscribe.ts';
import { DEMO_PRODUCT, DEMO_SLUG, recallDemoTokens, rememberDemoTokens, seedDemo } from '../seed.ts';

function onSignals(stop: () => Promise<void>) {
  let stopping = false;
  const handler = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`\n${signal}: draining requests and stopping\n`);
    await stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => void handler('SIGTERM'));
  process.on('SIGINT', () => void handler('SIGINT'));
}

export async function serve(opts: { worker: boolean; seed: boolean }): Promise<void> {
  const config = loadConfig();
  const { db, release } = await openStore(config, { holdEmbedded: true });
  const app = await buildApp({ db, config });
  installProcessGuard(app.log);
  let tokens = config.databaseUrl ? null : recallDemoTokens(config.dataDir);
  if (opts.seed) {
    const seeded = await seedDemo(db, allPermits(app), { onlyIfEmpty: true });
    if (seeded?.created) {
      tokens = { clientToken: seeded.clientToken, userToken: seeded.userToken };
      if (!config.databaseUrl) rememberDemoTokens(config.dataDir, tokens);
    }
  }
  await app.listen({ port: config.port, host: config.host });
  const oneClick = await oneClickWarning(db, config.publicBaseUrl);
  if (oneClick) app.log.warn(oneClick);
  const metricsServer = config.metricsPort !== undefined ? await startMetricsServer(app.hei.metrics, config) : null;
  if (opts.worker) app.hei.worker.start();

  const url = `http://localhost:${config.port}`;
  const lines = [
    '',
    `  Hei is running on ${url}  (${config.databaseUrl ? 'PostgreSQL server' : `embedded database in ${config.dataDir}`})`,
    `  API docs:   ${url}/docs`,
  ];
  if (tokens?.clientToken) {
    lines.push(
      `  Demo club:  ${DEMO_SLUG}`,
      `  Client token (all permits, product "${DEMO_PRODUCT}"): ${tokens.clientToken}`,
      '',
      `  curl -H 'X-User-Agent: curl' -H 'X-Product-Name: ${DEMO_PRODUCT}' -H 'X-Loyalty-Club-Slug: ${DEMO_SLUG}' \\`,
      `       -H 'X-Client-Authorization: ${tokens.clientToken}' ${url}/v1/users`,
    );
  }
  process.stdout.write(lines.join('\n') + '\n\n');

  onSignals(async () => {
    metricsServer?.close();
    // The worker first (DECISIONS "Faults", shutdown): no new claim, the batch in flight finished
    // or released, this worker's claims given back — while the transports are still open.
    await app.hei.worker.stop();
    await app.close(); // stops accepting, waits for requests in flight
    await db.close();
    release();
  });
}

export async function runWorker(): Promise<void> {
  const config = loadConfig();
  if (!config.databaseUrl) {
    throw new Error('hei worker runs beside the API against a PostgreSQL server: set DATABASE_URL (the embedded database serves one process).');
  }
  const { db } = await openStore(config);
  const app = await buildApp({ db, config });
  installProcessGuard(app.log);
  await app.ready();
  app.hei.worker.start();
  process.stdout.write(`hei worker running jobs: ${app.hei.worker.jobNames.join(', ') || '(none yet)'}\n`);
  onSignals(async () => {
    await app.hei.worker.stop();
    await app.close();
    await db.close();
  });
}
