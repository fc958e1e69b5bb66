// Operational routes: liveness, readiness, metrics, the OpenAPI document. No headers, no token.
import { Type } from '@sinclair/typebox';
import { api } from './context.ts';
import { ApiError } from './errors.ts';
import { metricsAccess } from './metrics.ts';
import type { DomainModule } from './services.ts';

const publicRoute = api({ permit: null, auth: 'None', context: 'Global' });

export const operationsRoutes: DomainModule = (app, { db, metrics, config }) => {
  app.get('/health', {
    config: publicRoute,
    schema: { summary: 'Process liveness', tags: ['Operations'], response: { 200: Type.Object({ status: Type.Literal('ok') }) } },
    handler: async () => ({ status: 'ok' as const }),
  });

  app.get('/ready', {
    config: publicRoute,
    schema: {
      summary: 'Database readiness',
      tags: ['Operations'],
      response: { 200: Type.Object({ status: Type.Literal('ready') }), 503: Type.Object({ error: Type.String() }) },
    },
    handler: async (_request, reply) => {
      try {
        await db.query('SELECT 1');
        return { status: 'ready' as const };
      } catch {
        return reply.status(503).send({ error: 'Database unavailable' });
      }
    },
  });

  app.get('/metrics', {
    config: publicRoute,
    schema: { summary: 'Prometheus metrics', tags: ['Operations'], response: { 200: Type.String() } },
    handler: async (request, reply) => {
      const access = metricsAccess(config, request.headers.authorization, 'api');
      if (access !== 'ok') throw access === 'elsewhere' ? new ApiError(404, 'Not found') : new ApiError(401, 'Invalid metrics token', { 'WWW-Authenticate': 'Bearer' });
      reply.type(metrics.registry.contentType);
      return metrics.registry.metrics();
    },
  });

  app.get('/openapi.json', {
    config: publicRoute,
    schema: { summary: 'OpenAPI 3.1 document of this server', tags: ['Operations'] },
    handler: async () => app.swagger(),
  });
};
