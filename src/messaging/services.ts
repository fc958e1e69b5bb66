// Messaging services (messaging-api.md §3, DECISIONS "Services"): the `{service}` path segment,
// its permit and its default marketing purpose.
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../platform/errors.ts';

export const SERVICES = ['generic', 'campaigns', 'campaigns_testing', 'tenants', 'tenants_testing', 'tem_documents', 'tem_documents_reminders'] as const;
export type ServiceName = (typeof SERVICES)[number];

export interface ServiceInfo {
  name: ServiceName;
  /** Extra permit needed besides the endpoint permit; `null` = none. */
  permit: string | null;
  marketing: boolean;
}

const pascal = (s: string) => s.split('_').map((p) => p[0].toUpperCase() + p.slice(1)).join('');
export const servicePermit = (s: string) => `Messages:Api:Messages:UseService:${pascal(s)}`;

export const SERVICE_INFO: Record<ServiceName, ServiceInfo> = {
  generic: { name: 'generic', permit: null, marketing: false },
  campaigns: { name: 'campaigns', permit: servicePermit('campaigns'), marketing: true },
  tenants: { name: 'tenants', permit: servicePermit('tenants'), marketing: true },
  tenants_testing: { name: 'tenants_testing', permit: servicePermit('tenants_testing'), marketing: false },
  // Test messages of campaigns and TEM document notifications: not marketing [inferred] (DECISIONS "Services").
  campaigns_testing: { name: 'campaigns_testing', permit: servicePermit('campaigns_testing'), marketing: false },
  tem_documents: { name: 'tem_documents', permit: servicePermit('tem_documents'), marketing: false },
  tem_documents_reminders: { name: 'tem_documents_reminders', permit: servicePermit('tem_documents_reminders'), marketing: false },
};

export const isService = (s: unknown): s is ServiceName => typeof s === 'string' && (SERVICES as readonly string[]).includes(s);

export const PERMIT_SET_PRIORITY = 'Messages:Api:Sendings:SetPriority';
export const PERMIT_WITHOUT_CONSENTS = 'Messages:Api:Sendings:WithoutConsentsChecks';

/** Permits a handler checks itself, announced through `services.extraPermits`. */
export const HANDLER_PERMITS = [PERMIT_SET_PRIORITY, PERMIT_WITHOUT_CONSENTS, ...Object.values(SERVICE_INFO).flatMap((s) => (s.permit ? [s.permit] : []))];

export function canUseService(permits: Set<string>, service: ServiceName): boolean {
  const p = SERVICE_INFO[service].permit;
  return p === null || permits.has(p);
}

/**
 * The route `authorize` hook for paths with `:service`: an unknown service is 404 and a service
 * the caller may not use is 403, both before the body is read.
 */
export function authorizeService(request: FastifyRequest): void {
  const service = (request.params as Record<string, string> | undefined)?.service;
  if (!isService(service)) throw new ApiError(404, 'Service not found');
  if (!canUseService(request.auth!.permits, service)) throw new ApiError(403, `Not authorized: unauthorized to set specific Service (${SERVICE_INFO[service].permit} required)`);
}
