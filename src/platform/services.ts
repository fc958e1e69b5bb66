// What every domain module receives: the store, configuration, metrics, the worker slot.
import type { FastifyBaseLogger, FastifyInstance, RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Database } from '../db/connection.ts';
import type { Config } from './config.ts';
import type { Metrics } from './metrics.ts';
import type { BackgroundWorker } from './background.ts';
import type { PlatformState } from './pipeline.ts';

export interface Services {
  db: Database;
  config: Config;
  metrics: Metrics;
  worker: BackgroundWorker;
  platform: PlatformState;
  log: FastifyBaseLogger;
  /** Permits that are checked inside handlers rather than on a route (e.g. `…:SetPriority`). */
  extraPermits: Set<string>;
}

export type Api = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, TypeBoxTypeProvider>;

/** A domain's routes and jobs. Registered in `src/app.ts`. */
export type DomainModule = (app: Api, services: Services) => void | Promise<void>;
