// Messaging API routes: messages, sendings, dispatches, services, merge properties, settings.
// Thin: each handler reads the request and calls a service function; the TypeBox schema is the
// validation, the type and the OpenAPI entry.
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { api } from '../platform/context.ts';
import { ApiError } from '../platform/errors.ts';
import { limitOffset, listQuery, orderBy, paginationInfo, type ListQuery } from '../platform/pagination.ts';
import { StringEnum } from '../platform/schema.ts';
import type { Api, Services } from '../platform/services.ts';
import { loadMemberSchema } from '../members/schema.ts';
import {
  createMessage,
  createSendingFor,
  deleteMessage,
  duplicateMessage,
  findMessageRow,
  loadMessage,
  MESSAGE_COLUMNS,
  MESSAGE_FROM,
  toMessages,
  updateMessage,
} from './messages.ts';
import {
  AGGREGATED_STATUSES,
  DISPATCH_STATUSES,
  DispatchSchema,
  ErrorSchema,
  MessageCreatePayload,
  MessageSchema,
  MessageUpdatePayload,
  parseId,
  SendingPayload,
  SendingSchema,
  ServiceIdParams,
  ServiceParams,
  wrap,
  wrapList,
  type MessageInput,
  type SendingInput,
} from './schemas.ts';
import { authorizeService, canUseService, SERVICE_INFO, SERVICES, type ServiceName } from './services.ts';
import {
  assertEditable,
  cancelSending,
  checkAudienceExists,
  checkSendingPayload,
  checkSendingPermits,
  dispatchStats,
  findSending,
  listSendings,
  loadSendingResponse,
  serializeSending,
  updateSending,
} from './sendings.ts';
import { clubSettings } from './settings.ts';
import { iso } from './templates.ts';
import { Violations } from '../platform/errors.ts';

const ctx = { auth: 'UserToken', context: 'LoyaltyClub' } as const;
const svc = (permit: string) => api({ permit, ...ctx, authorize: authorizeService });
const errors = { 403: ErrorSchema, 404: ErrorSchema, 405: ErrorSchema, 422: Type.Object({ error: Type.String(), details: Type.Any() }) };

const MESSAGE_SORT = { created_at: 'm.created_at', updated_at: 'm.updated_at', name: 'm.name', id: 'm.id' };
const messageFilters = {
  sendings_status: Type.Optional(StringEnum(AGGREGATED_STATUSES)),
  campaign_id: Type.Optional(Type.Integer({ minimum: 1 })),
  archived: Type.Optional(Type.Boolean()),
  search: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
};
const MessagesQuery = listQuery({ defaultPerPage: 100, maxPerPage: 100, sortable: Object.keys(MESSAGE_SORT) }, messageFilters);
const OverviewQuery = listQuery(
  { defaultPerPage: 100, maxPerPage: 100, sortable: Object.keys(MESSAGE_SORT) },
  { ...messageFilters, service: Type.Optional(Type.Array(StringEnum(SERVICES), { maxItems: SERVICES.length })) },
);
type MessagesQueryT = ListQuery & { sendings_status?: string; campaign_id?: number; archived?: boolean; search?: string; service?: string[] };

const SENDING_SORT = { created_at: 's.created_at', updated_at: 's.updated_at', scheduled_at: 's.scheduled_at', id: 's.id' };
const SendingsQuery = listQuery({ defaultPerPage: 100, maxPerPage: 100, sortable: Object.keys(SENDING_SORT) });
const DISPATCH_SORT = { id: 'id', created_at: 'created_at', updated_at: 'updated_at', sent_at: 'sent_at' };
const DispatchesQuery = listQuery(
  { defaultPerPage: 100, maxPerPage: 100, sortable: Object.keys(DISPATCH_SORT) },
  { status: Type.Optional(Type.Array(StringEnum(DISPATCH_STATUSES), { maxItems: DISPATCH_STATUSES.length })) },
);

const likePattern = (s: string) => `%${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

async function listMessages(db: Services['db'], clubId: number, services: string[], q: MessagesQueryT) {
  const params: unknown[] = [clubId, services];
  const where = ['m.loyalty_club_id = $1', 'm.service = ANY($2::text[])'];
  const param = (v: unknown) => `$${params.push(v)}`;
  if (q.sendings_status !== undefined) where.push(`agg.sendings_status = ${param(q.sendings_status)}`);
  if (q.campaign_id !== undefined) where.push(`m.campaign_id = ${param(q.campaign_id)}`);
  if (q.archived !== undefined) where.push(`${q.archived ? '' : 'NOT '}(m.archived_at IS NOT NULL OR c.archived_at IS NOT NULL)`);
  if (q.search !== undefined) {
    const p = param(likePattern(q.search));
    where.push(`EXISTS (SELECT 1 FROM message_channels ch JOIN message_templates t ON t.id = ch.template_id
      WHERE ch.message_id = m.id AND (t.content->>'body' ILIKE ${p} OR t.content->>'subject' ILIKE ${p}))`);
  }
  const { rows } = await db.query<any>(
    `SELECT ${MESSAGE_COLUMNS}, count(*) OVER () AS total FROM ${MESSAGE_FROM} WHERE ${where.join(' AND ')}
      ${orderBy(q, MESSAGE_SORT, { by: 'created_at' })} ${limitOffset(q)}`,
    params,
  );
  const total = rows.length
    ? rows[0].total
    : (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${MESSAGE_FROM} WHERE ${where.join(' AND ')}`, params)).rows[0].n;
  return { messages: await toMessages(db, rows), pagination_info: paginationInfo(total, q.page_no, q.per_page) };
}

function serviceOf(request: FastifyRequest): ServiceName {
  return (request.params as { service: ServiceName }).service; // checked by authorizeService
}

function idOf(raw: string, what: string): number {
  const id = parseId(raw);
  if (id === null) throw new ApiError(404, `${what} not found`);
  return id;
}

export function messageRoutes(app: Api, { db, config }: Services): void {
  // ----- messages -----
  app.post('/v1/messages/:service', {
    config: svc('Messages:Api:Messages:Create'),
    schema: {
      summary: 'Create Message',
      tags: ['Messages'],
      params: ServiceParams,
      body: Type.Object({ message: MessageCreatePayload }, { additionalProperties: false }),
      response: { 200: wrap('message', MessageSchema), ...errors },
    },
    handler: async (request) => {
      const body = request.body as { message: MessageInput };
      return { message: await createMessage(db, request.club!, request.auth!.permits, serviceOf(request), body.message) };
    },
  });

  app.get('/v1/messages/:service', {
    config: svc('Messages:Api:Messages:Index'),
    schema: { summary: 'List Messages', tags: ['Messages'], params: ServiceParams, querystring: MessagesQuery, response: { 200: wrapList('messages', MessageSchema), ...errors } },
    handler: async (request) => listMessages(db, request.club!.id, [serviceOf(request)], request.query as MessagesQueryT),
  });

  app.get('/v1/messages_overview', {
    config: api({ permit: 'Messages:Api:MessagesOverview:Index', ...ctx }),
    schema: {
      summary: 'List Messages Overview',
      description: 'Messages of every service the caller may use (optionally `service[]`), with the filters of List Messages.',
      tags: ['Messages'],
      querystring: OverviewQuery,
      response: { 200: wrapList('messages', MessageSchema), ...errors },
    },
    handler: async (request) => {
      const q = request.query as MessagesQueryT;
      const usable = SERVICES.filter((s) => canUseService(request.auth!.permits, s) && (!q.service || q.service.includes(s)));
      return listMessages(db, request.club!.id, usable, q);
    },
  });

  app.get('/v1/messages/:service/:id', {
    config: svc('Messages:Api:Messages:Get'),
    schema: { summary: 'Show Message', tags: ['Messages'], params: ServiceIdParams, response: { 200: wrap('message', MessageSchema), ...errors } },
    handler: async (request) => {
      const { id } = request.params as { id: string };
      return { message: await loadMessage(db, request.club!.id, serviceOf(request), idOf(id, 'Message')) };
    },
  });

  app.put('/v1/messages/:service/:id', {
    config: svc('Messages:Api:Messages:Update'),
    schema: {
      summary: 'Update Message',
      tags: ['Messages'],
      params: ServiceIdParams,
      body: Type.Object({ message: MessageUpdatePayload }, { additionalProperties: false }),
      response: { 200: wrap('message', MessageSchema), ...errors },
    },
    handler: async (request) => {
      const { id } = request.params as { id: string };
      const body = request.body as { message: MessageInput };
      return { message: await updateMessage(db, request.club!, request.auth!.permits, serviceOf(request), idOf(id, 'Message'), body.message) };
    },
  });

  app.put('/v1/messages/:service/:id/duplicate', {
    config: svc('Messages:Api:Messages:Duplicate'),
    schema: { summary: 'Duplicate Message', tags: ['Messages'], params: ServiceIdParams, response: { 200: wrap('message', MessageSchema), ...errors } },
    handler: async (request) => {
      const { id } = request.params as { id: string };
      return { message: await duplicateMessage(db, request.club!, serviceOf(request), idOf(id, 'Message')) };
    },
  });

  app.delete('/v1/messages/:service/:id', {
    config: svc('Messages:Api:Messages:Destroy'),
    schema: { summary: 'Delete Message', tags: ['Messages'], params: ServiceIdParams, response: { 200: wrap('message', MessageSchema), ...errors } },
    handler: async (request) => {
      const { id } = request.params as { id: string };
      return { message: await deleteMessage(db, request.club!, serviceOf(request), idOf(id, 'Message')) };
    },
  });

  // ----- sendings -----
  app.get('/v1/messages/:service/:id/sendings', {
    config: svc('Messages:Api:Sendings:Index'),
    schema: { summary: 'List Message Sendings', tags: ['Sendings'], params: ServiceIdParams, querystring: SendingsQuery, response: { 200: wrapList('sendings', SendingSchema), ...errors } },
    handler: async (request) => {
      const { id } = request.params as { id: string };
      const message = await findMessageRow(db, request.club!.id, serviceOf(request), idOf(id, 'Message'));
      if (!message) throw new ApiError(404, 'Message not found');
      const q = request.query as ListQuery;
      const { rows, total } = await listSendings(db, message.id, `${orderBy(q, SENDING_SORT, { by: 'created_at' })} ${limitOffset(q)}`);
      const stats = await dispatchStats(db, rows.map((r) => r.id));
      return { sendings: rows.map((r) => serializeSending(r, stats.get(r.id)!)), pagination_info: paginationInfo(total, q.page_no, q.per_page) };
    },
  });

  app.post('/v1/messages/:service/:id/sendings', {
    config: svc('Messages:Api:Sendings:Create'),
    schema: {
      summary: 'Create Sending',
      tags: ['Sendings'],
      params: ServiceIdParams,
      body: Type.Object({ sending: SendingPayload }, { additionalProperties: false }),
      response: { 200: wrap('sending', SendingSchema), ...errors },
    },
    handler: async (request) => {
      const { id } = request.params as { id: string };
      const body = request.body as { sending: SendingInput };
      const service = serviceOf(request);
      const sendingId = await createSendingFor(db, request.club!, request.auth!.permits, service, idOf(id, 'Message'), body.sending);
      return { sending: await loadSendingResponse(db, request.club!.id, service, sendingId) };
    },
  });

  app.get('/v1/messages/:service/sendings/:id', {
    config: svc('Messages:Api:Sendings:Get'),
    schema: { summary: 'Show Sending', tags: ['Sendings'], params: ServiceIdParams, response: { 200: wrap('sending', SendingSchema), ...errors } },
    handler: async (request) => {
      const { id } = request.params as { id: string };
      return { sending: await loadSendingResponse(db, request.club!.id, serviceOf(request), idOf(id, 'Sending')) };
    },
  });

  app.put('/v1/messages/:service/sendings/:id', {
    config: svc('Messages:Api:Sendings:Update'),
    schema: {
      summary: 'Update Sending',
      tags: ['Sendings'],
      params: ServiceIdParams,
      body: Type.Object({ sending: SendingPayload }, { additionalProperties: false }),
      response: { 200: wrap('sending', SendingSchema), ...errors },
    },
    handler: async (request) => {
      const { id } = request.params as { id: string };
      const input = (request.body as { sending: SendingInput }).sending;
      const club = request.club!;
      const service = serviceOf(request);
      checkSendingPermits(request.auth!.permits, input);
      const sendingId = idOf(id, 'Sending');
      await db.transaction(async (tx) => {
        const current = await findSending(tx, club.id, service, sendingId, true);
        if (!current) throw new ApiError(404, 'Sending not found');
        assertEditable(current);
        const v = new Violations();
        await checkSendingPayload(tx, club, v, ['sending'], input, { hasAudience: current.audience_type !== null, recipientsCount: current.recipients_count });
        v.throwIfAny();
        await checkAudienceExists(tx, club.id, input);
        await updateSending(tx, current, input);
      });
      return { sending: await loadSendingResponse(db, club.id, service, sendingId) };
    },
  });

  app.put('/v1/messages/:service/sendings/:id/cancel', {
    config: svc('Messages:Api:Sendings:Cancel'),
    schema: { summary: 'Cancel Sending', tags: ['Sendings'], params: ServiceIdParams, response: { 200: wrap('sending', SendingSchema), ...errors } },
    handler: async (request) => {
      const { id } = request.params as { id: string };
      const club = request.club!;
      const service = serviceOf(request);
      const sendingId = idOf(id, 'Sending');
      await db.transaction(async (tx) => {
        const current = await findSending(tx, club.id, service, sendingId, true);
        if (!current) throw new ApiError(404, 'Sending not found');
        await cancelSending(tx, current);
      });
      return { sending: await loadSendingResponse(db, club.id, service, sendingId) };
    },
  });

  app.get('/v1/messages/:service/sendings/:id/dispatches', {
    config: svc('Messages:Api:Dispatches:Index'),
    schema: {
      summary: 'List Sending Dispatches',
      description: 'One entry per receiver of the sending, as built and updated by the delivery engine (beyond MPC).',
      tags: ['Sendings'],
      params: ServiceIdParams,
      querystring: DispatchesQuery,
      response: { 200: wrapList('dispatches', DispatchSchema), ...errors },
    },
    handler: async (request) => {
      const { id } = request.params as { id: string };
      const sending = await findSending(db, request.club!.id, serviceOf(request), idOf(id, 'Sending'));
      if (!sending) throw new ApiError(404, 'Sending not found');
      const q = request.query as ListQuery & { status?: string[] };
      const params: unknown[] = [sending.id];
      let where = 'sending_id = $1';
      if (q.status?.length) where += ` AND status = ANY($${params.push(q.status)}::text[])`;
      const { rows } = await db.query<any>(
        `SELECT id, sending_id, status, channel, member_id, email, msisdn, push_token, skip_reason, provider_id, error, attempts,
                sent_at, delivered_at, failed_at, created_at, updated_at, count(*) OVER () AS total
           FROM dispatches WHERE ${where} ${orderBy(q, DISPATCH_SORT, { by: 'id' })} ${limitOffset(q)}`,
        params,
      );
      const total = rows.length ? rows[0].total : (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM dispatches WHERE ${where}`, params)).rows[0].n;
      return {
        dispatches: rows.map(({ total: _t, ...d }) => ({
          ...d,
          sent_at: iso(d.sent_at),
          delivered_at: iso(d.delivered_at),
          failed_at: iso(d.failed_at),
          created_at: iso(d.created_at),
          updated_at: iso(d.updated_at),
        })),
        pagination_info: paginationInfo(total, q.page_no, q.per_page),
      };
    },
  });

  // ----- misc -----
  app.get('/v1/messages/services', {
    config: api({ permit: 'Messages:Api:Services:Index', ...ctx }),
    schema: {
      summary: 'List Messaging Services',
      tags: ['Messaging Misc'],
      response: {
        200: Type.Object({ services: Type.Array(Type.Object({ name: Type.String(), permit: Type.Union([Type.String(), Type.Null()]), marketing: Type.Boolean() })) }),
      },
    },
    handler: async (request) => ({
      services: SERVICES.filter((s) => canUseService(request.auth!.permits, s)).map((s) => ({ name: s, permit: SERVICE_INFO[s].permit, marketing: SERVICE_INFO[s].marketing })),
    }),
  });

  app.get('/v1/messages/merge_properties', {
    config: api({ permit: 'Messages:Api:MergeProperties:Index', ...ctx }),
    schema: {
      summary: 'List Merge Properties',
      tags: ['Messaging Misc'],
      response: { 200: Type.Object({ merge_properties: Type.Array(Type.Object({ name: Type.String(), type: Type.String(), source: StringEnum(['standard', 'member_schema'] as const) })) }) },
    },
    handler: async (request) => {
      const schema = await loadMemberSchema(db, request.club!.id);
      const standard: Array<[string, string]> = [
        ['member_id', 'integer'], ['first_name', 'string'], ['last_name', 'string'], ['email', 'string'], ['msisdn', 'string'], ['unsubscribe_url', 'string'],
      ];
      const out: Array<{ name: string; type: string; source: 'standard' | 'member_schema' }> = standard.map(([name, type]) => ({ name, type, source: 'standard' }));
      // jsonb keeps no key order, so schema properties come alphabetically.
      for (const [name, def] of Object.entries(schema.properties ?? {}).sort(([x], [y]) => x.localeCompare(y))) {
        if (out.some((p) => p.name === name)) continue;
        out.push({ name, type: String((def as { type?: string }).type ?? 'string'), source: 'member_schema' as const });
      }
      return { merge_properties: out };
    },
  });

  app.get('/v1/messages/settings', {
    config: api({ permit: 'Messages:Api:Settings:Get', ...ctx }),
    schema: {
      summary: 'Show Messaging Settings',
      tags: ['Messaging Misc'],
      response: {
        200: Type.Object({
          settings: Type.Object({
            channels: Type.Object({
              sms: Type.Object({ configured: Type.Boolean(), default_sender: Type.Union([Type.Object({ type: Type.String(), value: Type.String() }), Type.Null()]) }),
              email: Type.Object({ configured: Type.Boolean(), from_email: Type.Union([Type.String(), Type.Null()]), from_name: Type.Union([Type.String(), Type.Null()]) }),
              push: Type.Object({ configured: Type.Boolean() }),
            }),
            shortener: Type.Object({ enabled: Type.Boolean(), base_url: Type.Union([Type.String(), Type.Null()]) }),
          }),
        }),
      },
    },
    handler: async (request) => ({ settings: clubSettings(request.club!, config.shortenerBaseUrl) }),
  });
}
