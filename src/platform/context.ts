// What a request carries after the platform pipeline: the club, the caller and its permits.
import type { ClientTokenRecord, UserTokenRecord } from './tokens.ts';
import type { CustomerSelector } from './headers.ts';

export interface LoyaltyClub {
  id: number;
  slug: string;
  name: string;
  timezone: string;
  languages: string[];
  default_language: string;
  messaging_settings: Record<string, any>;
  created_at: Date;
  updated_at: Date;
}

export interface RequestAuth {
  /** Null when a UserToken route was called with a user token alone. */
  client: ClientTokenRecord | null;
  user: UserTokenRecord | null;
  /** Client permits, client ∩ role permits when both tokens are present, role permits for a user token alone. */
  permits: Set<string>;
}

/** How a route is reached: the three MPC tags (permit, context, authorizations) plus its bucket. */
export type AuthKind = 'Token' | 'UserToken' | 'TokenMember' | 'None';
export type ApiContextKind = 'LoyaltyClub' | 'Customer' | 'Global';

export interface RouteMeta {
  /**
   * The permit the caller must hold; `null` only for public operational routes (auth `None`). A
   * list names one permit under several names (MPC's first, earlier names after it as aliases):
   * holding any of them is enough.
   */
  permit: string | readonly string[] | null;
  auth: AuthKind;
  context: ApiContextKind;
  bucket?: 'general' | 'reporting';
  cost?: number;
  /** Further checks after the permit, before the body is read (e.g. messaging service permits). */
  authorize?: (request: import('fastify').FastifyRequest) => void | Promise<void>;
}

/** Route `config` helper: `config: api({ permit: 'X', auth: 'Token', context: 'LoyaltyClub' })`. */
export function api(meta: RouteMeta): { api: RouteMeta } {
  return { api: meta };
}

/** The names a route's permit goes by (none for public routes). */
export const permitNames = (permit: RouteMeta['permit']): readonly string[] => (permit === null ? [] : typeof permit === 'string' ? [permit] : permit);

declare module 'fastify' {
  interface FastifyRequest {
    club: LoyaltyClub | null;
    auth: RequestAuth | null;
    locale: string | null;
    customer: CustomerSelector | null;
    productName: string | null;
  }
  interface FastifyContextConfig {
    api?: RouteMeta;
  }
}

export function requireClub(request: import('fastify').FastifyRequest): LoyaltyClub {
  if (!request.club) throw new Error('route declared without LoyaltyClub context');
  return request.club;
}
