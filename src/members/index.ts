// The members domain: routes plus its background jobs (imports, their purge, webhook delivery).
import type { DomainModule } from '../platform/services.ts';
import { memberRoutes } from './routes.ts';
import { purgeImportPersonalData, runImportWork } from './imports.ts';
import { deliverDueEvents, purgeOldWebhookEvents, webhookSettingsFromEnv } from './webhooks.ts';

export const membersRoutes: DomainModule = async (app, services) => {
  const webhooks = webhookSettingsFromEnv();
  await memberRoutes(webhooks)(app, services);
  const { db, worker } = services;
  worker.register({ name: 'members-imports', intervalMs: 2_000, run: () => runImportWork(db) });
  worker.register({
    name: 'members-purge',
    intervalMs: 10 * 60_000,
    run: async () => {
      await purgeImportPersonalData(db);
      await purgeOldWebhookEvents(db);
      return false;
    },
  });
  worker.register({ name: 'members-webhooks', intervalMs: 1_000, run: async (signal) => (await deliverDueEvents(db, webhooks, { signal })) > 0 });
};
