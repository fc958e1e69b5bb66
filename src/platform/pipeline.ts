// The request pipeline every API route goes through, in the order fixed by DECISIONS.md:
// headers (470/471) → client token (401) → club matches token (401) → user token (401) →
// permit (403) → route's own authorization, e.g. service permit (403) → rate limit (429) →
// body (400/422, by Fastify) → handler (404/405).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Database } from '../db/connection.ts';
import type { Config } from './config.ts';
import { permitNames, type LoyaltyClub, type RouteMeta } from './context.ts';
import { ApiError } from './errors.ts';
import { TtlCache } from './cache.ts';
import { findClubBySlug } from './clubs.ts';
import { findClientToken, findUserToken, tokenAllowsClub, type ClientTokenRecord, type UserTokenRecord } from './tokens.ts';
import { isValidLocale, isValidProductName, isValidSlug, isValidUserAgent, parseCustomer, resolveLocale } from './headers.ts';
import { RateLimiter } from './ratelimit.ts';

export interface PlatformState {
  clubs: TtlCache<string, LoyaltyClub | null>;
  clientTokens: TtlCache<string, ClientTokenRecord | null>;
  limiter: RateLimiter;
}

function header(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

const missing = (name: string) => new ApiError(470, `Missing required header: ${name}`);
const malformed = (name: string) => new ApiError(471, `Invalid header value: ${name}`);

export function installPipeline(app: FastifyInstance, db: Database, config: Config): PlatformState {
  const state: PlatformState = {
    clubs: new TtlCache(config.tokenCacheSeconds * 1000),
    clientTokens: new TtlCache(config.tokenCacheSeconds * 1000),
    limiter: new RateLimiter(),
  };
  app.decorateRequest('club', null);
  app.decorateRequest('auth', null);
  app.decorateRequest('locale', null);
  app.decorateRequest('customer', null);
  app.decorateRequest('productName', null);

  const rateLimit = (reply: FastifyReply, key: string, meta: Pick<RouteMeta, 'bucket' | 'cost'> | undefined) => {
    const bucket = meta?.bucket ?? 'general';
    const cost = meta?.cost ?? 1;
    const result = state.limiter.take(`${bucket}:${key}`, cost, config.rateLimit[bucket]);
    reply.header('ratelimit-bucket', `${bucket}:${key}`);
    reply.header('ratelimit-remaining', String(result.remaining));
    reply.header('ratelimit-cost', String(cost));
    if (result.limited) throw new ApiError(429, 'Rate limit exceeded', { 'Retry-After': String(result.retryAfter) });
  };

  app.addHook('onRequest', async (request, reply) => {
    const meta = request.routeOptions.config?.api;
    if (!meta || meta.auth === 'None') return;

    // 1. Global headers.
    const userAgent = header(request, 'x-user-agent');
    if (!userAgent) throw missing('X-User-Agent');
    if (!isValidUserAgent(userAgent)) throw malformed('X-User-Agent');
    const product = header(request, 'x-product-name');
    if (!product) throw missing('X-Product-Name');
    if (!isValidProductName(product)) throw malformed('X-Product-Name');
    request.productName = product;
    const customer = header(request, 'x-customer');
    if (customer !== undefined) {
      request.customer = parseCustomer(customer);
      if (!request.customer) throw malformed('X-Customer');
    }
    const locale = header(request, 'x-locale');
    if (locale !== undefined && !isValidLocale(locale)) throw malformed('X-Locale');

    let slug: string | undefined;
    if (meta.context === 'LoyaltyClub') {
      // Legacy v3 paths carry the slug in the URL; all others use the header.
      const pathSlug = (request.params as Record<string, string> | undefined)?.loyalty_club_slug;
      const headerSlug = header(request, 'x-loyalty-club-slug');
      slug = pathSlug || headerSlug || undefined;
      if (slug !== undefined && !isValidSlug(slug)) throw malformed('X-Loyalty-Club-Slug');
      // A club context that contradicts itself names no club: the same 401 as a foreign club.
      if (pathSlug !== undefined && headerSlug !== undefined && headerSlug !== pathSlug) {
        throw new ApiError(401, 'Client token does not match the loyalty club');
      }
    }
    const raw = header(request, 'x-client-authorization');
    const authorization = meta.auth === 'UserToken' ? header(request, 'authorization') : undefined;
    // On UserToken routes a user bearer alone is enough: its club is the context when none is named.
    const userOnly = raw === undefined && authorization !== undefined;
    if (meta.context === 'LoyaltyClub' && slug === undefined && !userOnly) throw missing('X-Loyalty-Club-Slug');

    // 2. Client token (bound to some clubs or all, to one product or any).
    let client: ClientTokenRecord | null = null;
    if (raw !== undefined) {
      client = await state.clientTokens.get(raw, () => findClientToken(db, raw));
      if (!client) throw new ApiError(401, 'Invalid client token');
      if (client.product !== null && client.product !== product) throw new ApiError(401, 'Client token does not match X-Product-Name');
    } else if (!userOnly) throw new ApiError(401, 'Missing client token (X-Client-Authorization)');

    // User token (endpoints tagged UserToken).
    let user: UserTokenRecord | null = null;
    if (authorization !== undefined) {
      const m = /^Bearer\s+(\S+)$/i.exec(authorization);
      if (!m) throw new ApiError(401, 'Invalid user token');
      user = await findUserToken(db, m[1]);
      if (!user) throw new ApiError(401, 'Invalid user token');
      if (client && !tokenAllowsClub(client, user.loyalty_club_id)) throw new ApiError(401, 'Invalid user token');
    }

    // 3. Loyalty-club context matches the token(s). An unknown slug answers like another club's,
    //    so that slugs cannot be probed.
    if (meta.context === 'LoyaltyClub') {
      slug ??= user!.club_slug;
      if (client && client.club_slugs !== null && !client.club_slugs.includes(slug)) throw new ApiError(401, 'Client token does not match the loyalty club');
      const club = await state.clubs.get(slug, () => findClubBySlug(db, slug!));
      if (!club) throw new ApiError(401, 'Client token does not match the loyalty club');
      if (user && user.loyalty_club_id !== club.id) throw new ApiError(401, 'Invalid user token');
      request.club = club;
      request.locale = resolveLocale(locale, club.languages, club.default_language);
      reply.header('content-language', request.locale);
    }

    // 4. Effective permits: the client token's, ∩ the user's role when both; the role's alone.
    let permits: Set<string>;
    if (client && user) {
      const rolePermits = new Set(user.permits);
      permits = new Set(client.permits.filter((p) => rolePermits.has(p)));
    } else permits = new Set((client ?? user!).permits);
    request.auth = { client, user, permits };

    // 5. Permit, then the route's own authorization.
    const names = permitNames(meta.permit);
    if (names.length && !names.some((p) => permits.has(p))) throw new ApiError(403, `Not authorized: permit ${names[0]} required`);
    if (meta.authorize) await meta.authorize(request);

    // 6. Rate limit.
    rateLimit(reply, client ? `token-${client.id}` : `user-${user!.user_id}`, meta);
  });

  // Every response names a bucket; requests stopped before authentication count on their address.
  app.addHook('onSend', async (request, reply, payload) => {
    if (!reply.hasHeader('ratelimit-bucket')) {
      try {
        rateLimit(reply, `ip-${request.ip}`, { bucket: 'general', cost: 1 });
      } catch {
        // an unauthenticated error response is never turned into a 429
      }
    }
    return payload;
  });

  return state;
}
