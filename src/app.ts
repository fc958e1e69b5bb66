// Builds the HTTP application: the platform pipeline, then every domain's routes.
import Fastify, { type FastifyBaseLogger } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { randomUUID } from 'node:crypto';
import type { Database } from './db/connection.ts';
import type { Config } from './platform/config.ts';
import { permitNames, type RouteMeta } from './platform/context.ts';
import { installErrorHandlers, ApiError, answerFrameworkError } from './platform/errors.ts';
import { installInputGuard } from './platform/input-guard.ts';
import { requestScope } from './platform/process-guard.ts';
import { installPipeline } from './platform/pipeline.ts';
import { installIdempotency } from './platform/idempotency.ts';
import { createMetrics, installRequestMetrics } from './platform/metrics.ts';
import { parseQueryString } from './platform/querystring.ts';
import { validatorCompiler } from './platform/validation.ts';
import { BackgroundWorker } from './platform/background.ts';
import type { Api, DomainModule, Services } from './platform/services.ts';
import { operationsRoutes } from './platform/operations.ts';
import { transportRoutes } from './transports/routes.ts';
import { usersRoutes } from './platform/users.ts';
import { membersRoutes } from './members/index.ts';
import { audienceRoutes } from './members/audience-routes.ts';
import { messagingRoutes } from './messaging/index.ts';
import { deliveryModule } from './delivery/index.ts';

/** Every domain, in registration order. A new domain adds one line here. */
const DOMAINS: DomainModule[] = [
  operationsRoutes,
  usersRoutes,
  membersRoutes,
  audienceRoutes,
  messagingRoutes,
  deliveryModule,
  transportRoutes,
];

export interface RegisteredRoute {
  method: string;
  url: string;
  meta: RouteMeta | undefined;
  hasSchema: boolean;
  hidden: boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    hei: Services;
    registeredRoutes: RegisteredRoute[];
  }
}

export interface BuildOptions {
  db: Database;
  config: Config;
  logger?: FastifyBaseLogger | boolean | object;
}

// Swagger UI serves its own static files under /docs; they are the only routes without our metadata.
const isDocsAsset = (url: string) => url === '/docs' || url.startsWith('/docs/');

export async function buildApp({ db, config, logger }: BuildOptions): Promise<Api> {
  const app = Fastify({
    logger: logger ?? { level: config.logLevel },
    bodyLimit: config.bodyLimitBytes,
    routerOptions: { querystringParser: parseQueryString as any },
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && /^[\w.-]{1,64}$/.test(given) ? given : randomUUID();
    },
    return503OnClosing: true,
    frameworkErrors: (err, _request, reply) => answerFrameworkError(err, reply),
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  const metrics = createMetrics();
  const worker = new BackgroundWorker(app.log);
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    requestScope.enterWith(request.id); // an uncaught failure of this request's work is logged with its id
  });
  installErrorHandlers(app);
  installInputGuard(app);
  const platform = installPipeline(app, db, config);
  installIdempotency(app, db);
  installRequestMetrics(app, metrics);

  const services: Services = { db, config, metrics, worker, platform, log: app.log, extraPermits: new Set() };
  app.decorate('hei', services);
  app.decorate('registeredRoutes', [] as RegisteredRoute[]);

  app.addHook('onRoute', (route) => {
    const hidden = Boolean((route.schema as any)?.hide);
    const meta = route.config?.api;
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      if (method === 'HEAD') continue;
      if (!meta && !isDocsAsset(route.url)) throw new Error(`route ${method} ${route.url} declares no permit metadata (config: api({...}))`);
      app.registeredRoutes.push({ method, url: route.url, meta, hasSchema: Boolean(route.schema), hidden });
    }
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Hei — MPC platform API', version: '0.1.0', description: 'Messaging, members and platform API for loyalty clubs.' },
      components: {
        securitySchemes: {
          ClientToken: { type: 'apiKey', in: 'header', name: 'X-Client-Authorization' },
          UserToken: { type: 'http', scheme: 'bearer' },
        },
      },
    },
    transform: ({ schema, url, route }) => {
      const meta = route.config?.api as RouteMeta | undefined;
      if (!meta) return { schema, url };
      const extra: Record<string, unknown> = {
        'x-permit': permitNames(meta.permit)[0] ?? null,
        ...(permitNames(meta.permit).length > 1 ? { 'x-permit-aliases': permitNames(meta.permit).slice(1) } : {}),
        'x-authorizations': meta.auth,
        'x-api-context': meta.context,
      };
      if (meta.auth !== 'None') {
        extra.security = meta.auth === 'UserToken' ? [{ ClientToken: [], UserToken: [] }, { ClientToken: [] }] : [{ ClientToken: [] }];
        extra.description = `API Permit: \`${permitNames(meta.permit)[0]}\` · Authorizations: ${meta.auth} · API Context: ${meta.context}`;
      }
      return { schema: { ...(schema as object), ...extra } as any, url };
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  for (const domain of DOMAINS) await domain(app, services);

  app.setNotFoundHandler(async (request, reply) => {
    // A known path with another method is 405, an unknown path 404.
    const path = request.url.split('?')[0];
    if (matchesOtherMethod(app, request.method, path)) throw new ApiError(405, `Method ${request.method} not allowed on ${path}`);
    throw new ApiError(404, 'Not found');
  });

  return app;
}

function matchesOtherMethod(app: Api, method: string, path: string): boolean {
  // A pattern with no fixed segment (`/:code`, the short links) matches any one-segment path and
  // so says nothing about which resources exist.
  return app.registeredRoutes.some((r) => r.method !== method && !/^\/:[^/]+$/.test(r.url) && pathMatches(r.url, path));
}

/** `/v1/messages/:service/:id` against a concrete path. */
function pathMatches(pattern: string, path: string): boolean {
  const p = pattern.split('/');
  const s = path.split('/');
  if (p.length !== s.length) return false;
  return p.every((seg, i) => seg.startsWith(':') ? s[i] !== '' : seg === s[i]);
}
