// Messaging API routes: messages, sendings, dispatches, services, merge properties, settings.
// Thin: each handler reads the request and calls a service function; the TypeBox schema is the
// validation, the type and the OpenAPI entry.
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { api } from '../platform/context.ts';
import { ApiError } from '../platform/errors.ts';
import { listQuery, type ListQuery } from '../platform/pagination.ts';
import { Id, Nullable, StringEnum } from '../platform/schema.ts';
import type { Api, Services } from '../platform/services.ts';
import { loadMemberSchema } from '../members/schema.ts';
import {
  createMessage,
  createSendingFor,
  deleteMessage,
  duplicateMessage,
  listMessages,
  listMessageSendings,
  loadMessage,
  MESSAGE_SORT,
  SENDING_SORT,
  updateMessage,
  type MessagesQuery as MessagesQueryT,
} from './messages.ts';
import {
  AGGREGATED_STATUSES,
  DISPATCH_STATUSES,
  DispatchMemberSchema,
  DispatchSchema,
  ErrorSchema,
  MessageCreatePayload,
  MessageSchema,
  MessageUpdatePayload,
  parseId,
  SendingPayload,
  SendingListItemSchema,
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
  cancelSendingFor,
  DELIVERY_STATUSES,
  DISPATCH_SORT,
  findSending,
  listDispatches,
  listDispatchMembers,
  loadSendingResponse,
  resumeSendingFor,
  TRANSMISSION_STATUSES,
  updateSendingFor,
  type DispatchesQuery as DispatchesQueryT,
} from './sendings.ts';
import { clubSettings, mergeProperties, mpcChannelSettings } from './settings.ts';
import { redactedSettings } from '../transports/config.ts';
import { TransportSettingsSchema } from '../transports/routes.ts';

const ctx = { auth: 'UserToken', context: 'LoyaltyClub' } as const;
// `aliases`: the permit names Hei used before MPC's documented ones (DECISIONS "Permit names").
const svc = (permit: string, aliases: string[] = []) => api({ permit: aliases.length ? [permit, ...aliases] : permit, ...ctx, authorize: authorizeService });
const errors = { 403: ErrorSchema, 404: ErrorSchema, 405: ErrorSchema, 422: Type.Object({ error: Type.String(), details: Type.Any() }) };

const messageFilters = {
  sendings_status: Type.Optional(StringEnum(AGGREGATED_STATUSES)),
  campaign_id: Type.Optional(Id),
  archived: Type.Optional(Type.Boolean()),
  search: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
};
const MessagesQuery = listQuery({ defaultPerPage: 100, maxPerPage: 100, sortable: Object.keys(MESSAGE_SORT) }, messageFilters);
const OverviewQuery = listQuery(
  { defaultPerPage: 100, maxPerPage: 100, sortable: Object.keys(MESSAGE_SORT) },
  { ...messageFilters, service: Type.Optional(Type.Array(StringEnum(SERVICES), { maxItems: SERVICES.length })) },
);

const SendingsQuery = listQuery({ defaultPerPage: 100, maxPerPage: 100, sortable: Object.keys(SENDING_SORT) });
const DispatchesQuery = listQuery(
  { defaultPerPage: 100, maxPerPage: 100, sortable: Object.keys(DISPATCH_SORT) },
  {
    status: Type.Optional(Type.Array(StringEnum(DISPATCH_STATUSES), { maxItems: DISPATCH_STATUSES.length })),
    transmission_status: Type.Optional(StringEnum(TRANSMISSION_STATUSES)),
    delivery_status: Type.Optional(StringEnum(DELIVERY_STATUSES)),
    member_id: Type.Optional(Id),
    msisdn: Type.Optional(Type.String({ minLength: 1, maxLength: 20 })),
    email: Type.Optional(Type.String({ minLength: 1, maxLength: 254 })),
    app_token: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  },
);
const DispatchMembersQuery = listQuery({ defaultPerPage: 100, maxPerPage: 100, sortable: ['id'] });

function serviceOf(request: FastifyRequest): ServiceName {
  return (request.params as { service: ServiceName }).service; // checked by authorizeService
}

function idOf(raw: string | number, what: string): number {
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
    config: svc('Messages:Api:Messages:List', ['Messages:Api:Messages:Index']),
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
      const { id } = request.params as { id: number };
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
      const { id } = request.params as { id: number };
      const body = request.body as { message: MessageInput };
      return { message: await updateMessage(db, request.club!, request.auth!.permits, serviceOf(request), idOf(id, 'Message'), body.message) };
    },
  });

  app.put('/v1/messages/:service/:id/duplicate', {
    config: svc('Messages:Api:Messages:Duplicate'),
    schema: { summary: 'Duplicate Message', tags: ['Messages'], params: ServiceIdParams, response: { 200: wrap('message', MessageSchema), ...errors } },
    handler: async (request) => {
      const { id } = request.params as { id: number };
      return { message: await duplicateMessage(db, request.club!, serviceOf(request), idOf(id, 'Message')) };
    },
  });

  app.delete('/v1/messages/:service/:id', {
    config: svc('Messages:Api:Messages:Destroy'),
    schema: { summary: 'Delete Message', tags: ['Messages'], params: ServiceIdParams, response: { 200: wrap('message', MessageSchema), ...errors } },
    handler: async (request) => {
      const { id } = request.params as { id: number };
      return { message: await deleteMessage(db, request.club!, serviceOf(request), idOf(id, 'Message')) };
    },
  });

  // ----- sendings -----
  app.get('/v1/messages/:service/:id/sendings', {
    config: svc('Messages:Api:Sendings:Index'),
    schema: { summary: 'List Message Sendings', tags: ['Sendings'], params: ServiceIdParams, querystring: SendingsQuery, response: { 200: wrapList('sendings', SendingListItemSchema), ...errors } },
    handler: async (request) => {
      const { id } = request.params as { id: number };
      return listMessageSendings(db, request.club!.id, serviceOf(request), idOf(id, 'Message'), request.query as ListQuery);
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
      const { id } = request.params as { id: number };
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
      const { id } = request.params as { id: number };
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
      const { id } = request.params as { id: number };
      const input = (request.body as { sending: SendingInput }).sending;
      const service = serviceOf(request);
      const sendingId = idOf(id, 'Sending');
      await updateSendingFor(db, request.club!, request.auth!.permits, service, sendingId, input);
      return { sending: await loadSendingResponse(db, request.club!.id, service, sendingId) };
    },
  });

  app.put('/v1/messages/:service/sendings/:id/cancel', {
    config: svc('Messages:Api:Sendings:Update', ['Messages:Api:Sendings:Cancel']),
    schema: { summary: 'Cancel Sending', tags: ['Sendings'], params: ServiceIdParams, response: { 200: wrap('sending', SendingSchema), ...errors } },
    handler: async (request) => {
      const { id } = request.params as { id: number };
      const service = serviceOf(request);
      const sendingId = idOf(id, 'Sending');
      await cancelSendingFor(db, request.club!.id, service, sendingId);
      return { sending: await loadSendingResponse(db, request.club!.id, service, sendingId) };
    },
  });

  app.put('/v1/messages/:service/sendings/:id/resume', {
    config: svc('Messages:Api:Sendings:Resume'),
    schema: {
      summary: 'Resume Sending',
      description: 'Resumes a sending that the delivery engine paused because its transmission errors crossed the threshold (beyond MPC).',
      tags: ['Sendings'],
      params: ServiceIdParams,
      response: { 200: wrap('sending', SendingSchema), ...errors },
    },
    handler: async (request) => {
      const { id } = request.params as { id: number };
      const service = serviceOf(request);
      const sendingId = idOf(id, 'Sending');
      await resumeSendingFor(db, request.club!.id, service, sendingId);
      return { sending: await loadSendingResponse(db, request.club!.id, service, sendingId) };
    },
  });

  app.get('/v1/messages/:service/sendings/:id/dispatches', {
    config: svc('Messages:Api:Dispatches:List', ['Messages:Api:Dispatches:Index']),
    schema: {
      summary: 'List Sending Dispatches',
      description: 'One entry per receiver of the sending, with MPC\'s fields and filters; `status`, `skip_reason`, `error` … are Hei\'s view beside them.',
      tags: ['Sendings'],
      params: ServiceIdParams,
      querystring: DispatchesQuery,
      response: { 200: wrapList('dispatches', DispatchSchema), ...errors },
    },
    handler: async (request) => {
      const { id } = request.params as { id: number };
      const sending = await findSending(db, request.club!.id, serviceOf(request), idOf(id, 'Sending'));
      if (!sending) throw new ApiError(404, 'Sending not found');
      return listDispatches(db, sending, request.query as DispatchesQueryT);
    },
  });

  app.get('/v1/messages/:service/sendings/:id/dispatches/members', {
    config: svc('Messages:Api:Dispatches:Members:Index'),
    schema: {
      summary: 'List Sending Members',
      description: 'The distinct members the sending has a dispatch for, with their current addresses and push tokens.',
      tags: ['Sendings'],
      params: ServiceIdParams,
      querystring: DispatchMembersQuery,
      response: { 200: wrapList('dispatch_members', DispatchMemberSchema), ...errors },
    },
    handler: async (request) => {
      const { id } = request.params as { id: number };
      const sending = await findSending(db, request.club!.id, serviceOf(request), idOf(id, 'Sending'));
      if (!sending) throw new ApiError(404, 'Sending not found');
      return listDispatchMembers(db, sending.id, request.query as ListQuery);
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
      response: {
        200: Type.Object({ merge_properties: Type.Array(Type.Object({ name: Type.String(), type: Type.String(), source: StringEnum(['standard', 'member_schema', 'member', 'recipient'] as const) })) }),
      },
    },
    handler: async (request) => {
      return { merge_properties: mergeProperties(await loadMemberSchema(db, request.club!.id)) };
    },
  });

  app.get('/v1/messages/settings', {
    config: api({ permit: ['Messages:Api:Settings:Show', 'Messages:Api:Settings:Get'], ...ctx }),
    schema: {
      summary: 'Show Settings',
      description: 'MPC\'s channel settings (`null` for a channel the club has not switched on); Hei\'s transports and shortener beside `channels`.',
      tags: ['Messaging Misc'],
      response: {
        200: Type.Object({
          settings: Type.Object({
            channels: Type.Object({
              sms: Nullable(Type.Object({ sender_type: Nullable(Type.String()), sender_value: Nullable(Type.String()) })),
              email: Nullable(Type.Object({ from_name: Nullable(Type.String()), from_email: Nullable(Type.String()) })),
              push: Nullable(Type.Object({ android_app_id: Nullable(Type.String()), ios_app_id: Nullable(Type.String()) })),
            }),
            transports: Type.Object({ sms: TransportSettingsSchema, email: TransportSettingsSchema, push: TransportSettingsSchema }),
            shortener: Type.Object({ enabled: Type.Boolean(), base_url: Nullable(Type.String()) }),
          }),
        }),
      },
    },
    handler: async (request) => {
      const settings = clubSettings(request.club!, config.shortenerBaseUrl);
      // Provider accounts with their secrets redacted; `outbox` where none is configured.
      const transports = await redactedSettings(db, request.club!.id);
      return {
        settings: {
          channels: mpcChannelSettings(settings),
          transports: { sms: transports.sms, email: transports.email, push: transports.push },
          shortener: settings.shortener,
        },
      };
    },
  });
}
