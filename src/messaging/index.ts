// The Messaging domain: API routes for messages, sendings, dispatches, templates, wrappers,
// campaigns, sender identities and the messaging misc endpoints.
import type { DomainModule } from '../platform/services.ts';
import { campaignRoutes } from './campaigns.ts';
import { identityRoutes } from './identities.ts';
import { messageRoutes } from './routes.ts';
import { HANDLER_PERMITS } from './services.ts';
import { templateRoutes } from './template-routes.ts';

export const messagingRoutes: DomainModule = (app, services) => {
  for (const p of HANDLER_PERMITS) services.extraPermits.add(p);
  // Static paths (templates, wrappers, services, settings, merge_properties) before `:service`;
  // the router prefers static segments either way, this only keeps the listing readable.
  templateRoutes(app, services);
  messageRoutes(app, services);
  campaignRoutes(app, services);
  identityRoutes(app, services);
};
