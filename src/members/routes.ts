// HTTP endpoints of the members domain (v3, loyalty-club slug in the path). Thin: each handler
// reads the request and calls one service function.
import type { FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import { api } from '../platform/context.ts';
import { notFound } from '../platform/errors.ts';
import { paginationInfo, PaginationInfoSchema, PageNoSchema, orderBy, listQuery, type ListQuery } from '../platform/pagination.ts';
import type { DomainModule } from '../platform/services.ts';
import * as S from './api-schemas.ts';
import { checkMemberSchema, loadMemberSchema, saveMemberSchema } from './schema.ts';
import {
  createMember, deleteMember, deletePushToken, findMemberByIdentifier, getMember, listMembers, listPushTokens, registerPushToken, updateMember,
  type MemberListQuery, type MemberWriteInput, type WriteSource,
} from './members.ts';
import { addGroupMembers, createGroup, deleteGroup, getGroup, GROUP_SORT, listGroupMemberIds, listGroups, removeGroupMembers, updateGroup } from './groups.ts';
import { getImport, getImportBulk, submitImportBulk, type ImportRequest } from './imports.ts';
import { createSubscription, deleteSubscription, getSubscription, listSubscriptions, updateSubscription, type WebhookSettings } from './webhooks.ts';

const BASE = '/v3/:loyalty_club_slug';

function source(request: FastifyRequest): WriteSource {
  const sub = request.headers['x-subproduct-name'];
  return { product: request.productName!, subproduct: typeof sub === 'string' && sub.length <= 100 ? sub : null };
}

const GroupListQuery = listQuery({ defaultPerPage: 100, maxPerPage: 1000, sortable: Object.keys(GROUP_SORT) }, { ids: Type.Optional(Type.Array(S.IdValue(), { maxItems: 1000 })) });
const PageQuery = Type.Object(
  { page_no: PageNoSchema(), per_page: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }) },
  { additionalProperties: false },
);

export function memberRoutes(webhooks: WebhookSettings): DomainModule {
  return (app, { db }) => {
    // ---- schema (Public API › Loyalty Club › Show Schema; update is ours) ----
    app.get(`${BASE}/schema`, {
      config: api({ permit: 'BL:Api:LoyaltyClubs:Schema:Show', auth: 'Token', context: 'LoyaltyClub' }),
      schema: { summary: 'Show Schema', tags: ['Loyalty Club'], params: S.SlugParams },
      handler: async (request) => loadMemberSchema(db, request.club!.id),
    });
    app.put(`${BASE}/schema`, {
      config: api({ permit: 'BL:Api:LoyaltyClubs:Schema:Update', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: { summary: 'Update Schema', tags: ['Loyalty Club'], params: S.SlugParams, body: Type.Object({}, { additionalProperties: true }) },
      handler: async (request) => {
        const schema = checkMemberSchema(request.body as Record<string, any>, request.club!);
        await saveMemberSchema(db, request.club!.id, schema);
        return schema;
      },
    });

    // ---- members ----
    app.get(`${BASE}/members`, {
      config: api({ permit: 'BL:Api:Members:Index', auth: 'Token', context: 'LoyaltyClub' }),
      schema: { summary: 'List Members', tags: ['Members'], params: S.SlugParams, querystring: S.MemberListQuery, response: { 200: S.MemberListResponse } },
      handler: async (request) => {
        const q = request.query as MemberListQuery;
        const { members, total } = await listMembers(db, request.club!.id, q);
        return { members, pagination_info: paginationInfo(total, q.page_no, q.per_page) };
      },
    });
    app.post(`${BASE}/members`, {
      config: api({ permit: 'BL:Api:Members:Create', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: { summary: 'Create Member', tags: ['Members'], params: S.SlugParams, body: S.CreateMemberBody, response: { 201: S.MemberSchema } },
      handler: async (request, reply) => {
        const member = await createMember(db, request.club!.id, request.body as MemberWriteInput, source(request));
        return reply.code(201).send(member);
      },
    });
    app.get(`${BASE}/members/by_msisdn/:msisdn`, {
      config: api({ permit: 'BL:Api:Members:Show', auth: 'Token', context: 'LoyaltyClub' }),
      schema: { summary: 'Find Member by MSISDN', tags: ['Members'], params: Type.Object({ loyalty_club_slug: Type.String(), msisdn: Type.String({ maxLength: 32 }) }), response: { 200: S.MemberSchema } },
      handler: async (request) => {
        const { msisdn } = request.params as { msisdn: string };
        const member = await findMemberByIdentifier(db, request.club!.id, 'msisdn', msisdn);
        if (!member) throw notFound('Member');
        return member;
      },
    });
    app.get(`${BASE}/members/by_email/:email`, {
      config: api({ permit: 'BL:Api:Members:Show', auth: 'Token', context: 'LoyaltyClub' }),
      schema: { summary: 'Find Member by E-mail', tags: ['Members'], params: Type.Object({ loyalty_club_slug: Type.String(), email: Type.String({ maxLength: 254 }) }), response: { 200: S.MemberSchema } },
      handler: async (request) => {
        const { email } = request.params as { email: string };
        const member = await findMemberByIdentifier(db, request.club!.id, 'email', email);
        if (!member) throw notFound('Member');
        return member;
      },
    });
    app.get(`${BASE}/members/:id`, {
      config: api({ permit: 'BL:Api:Members:Show', auth: 'Token', context: 'LoyaltyClub' }),
      schema: { summary: 'Show Member', tags: ['Members'], params: S.IdParams, response: { 200: S.MemberSchema } },
      handler: async (request) => getMember(db, request.club!.id, (request.params as { id: number }).id),
    });
    app.put(`${BASE}/members/:id`, {
      config: api({ permit: 'BL:Api:Members:Update', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: { summary: 'Update Member', tags: ['Members'], params: S.IdParams, body: S.UpdateMemberBody, response: { 200: S.MemberSchema } },
      handler: async (request) => updateMember(db, request.club!.id, (request.params as { id: number }).id, request.body as MemberWriteInput, source(request)),
    });
    app.delete(`${BASE}/members/:id`, {
      config: api({ permit: 'BL:Api:Members:Destroy', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: { summary: 'Destroy Member', tags: ['Members'], params: S.IdParams },
      handler: async (request, reply) => {
        await deleteMember(db, request.club!.id, (request.params as { id: number }).id, source(request));
        return reply.code(204).send();
      },
    });

    // ---- push tokens (Register Member App Token; read by delivery) ----
    app.post(`${BASE}/members/:id/push_tokens`, {
      config: api({ permit: 'BL:Api:Members:PushTokens:Create', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: { summary: 'Register Member App Token', tags: ['Members'], params: S.IdParams, body: S.PushTokenBody, response: { 200: S.PushTokenSchema, 201: S.PushTokenSchema } },
      handler: async (request, reply) => {
        const body = request.body as { token: string; platform: string };
        const { token, created } = await registerPushToken(db, request.club!.id, (request.params as { id: number }).id, body.token, body.platform);
        return reply.code(created ? 201 : 200).send(token);
      },
    });
    app.get(`${BASE}/members/:id/push_tokens`, {
      config: api({ permit: 'BL:Api:Members:PushTokens:Index', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: { summary: 'List Member App Tokens', tags: ['Members'], params: S.IdParams, response: { 200: Type.Object({ push_tokens: Type.Array(S.PushTokenSchema) }) } },
      handler: async (request) => ({ push_tokens: await listPushTokens(db, request.club!.id, (request.params as { id: number }).id) }),
    });
    app.delete(`${BASE}/members/:id/push_tokens/:push_token_id`, {
      config: api({ permit: 'BL:Api:Members:PushTokens:Destroy', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: {
        summary: 'Destroy Member App Token',
        tags: ['Members'],
        params: Type.Object({ loyalty_club_slug: Type.String(), id: S.IdValue(), push_token_id: S.IdValue() }),
      },
      handler: async (request, reply) => {
        const p = request.params as { id: number; push_token_id: number };
        await deletePushToken(db, request.club!.id, p.id, p.push_token_id);
        return reply.code(204).send();
      },
    });

    // ---- imports ----
    app.post(`${BASE}/members/imports`, {
      config: { ...api({ permit: 'BL:Api:Members:Imports:Create', auth: 'Token', context: 'LoyaltyClub' }), checksOwnItems: ['members'] },
      schema: { summary: 'Create Members Import Request', tags: ['Members Imports'], params: S.SlugParams, body: S.ImportBody, response: { 201: S.BulkSchema } },
      handler: async (request, reply) => {
        const bulk = await submitImportBulk(db, request.club!.id, request.body as ImportRequest, request.productName!);
        return reply.code(201).send(bulk);
      },
    });
    app.get(`${BASE}/members/imports/:import_id`, {
      config: api({ permit: 'BL:Api:Members:Imports:Show', auth: 'Token', context: 'LoyaltyClub' }),
      schema: {
        summary: 'Show Members Import Status',
        tags: ['Members Imports'],
        params: Type.Object({ loyalty_club_slug: Type.String(), import_id: Type.String({ maxLength: 100 }) }),
        response: { 200: S.ImportSchema },
      },
      handler: async (request) => getImport(db, request.club!.id, (request.params as { import_id: string }).import_id),
    });
    app.get(`${BASE}/members/imports/:import_id/bulks/:bulk_id`, {
      config: api({ permit: 'BL:Api:Members:Imports:Show', auth: 'Token', context: 'LoyaltyClub' }),
      schema: {
        summary: 'Show Members Import Bulk Status',
        tags: ['Members Imports'],
        params: Type.Object({ loyalty_club_slug: Type.String(), import_id: Type.String({ maxLength: 100 }), bulk_id: S.IdValue() }),
        response: { 200: S.BulkSchema },
      },
      handler: async (request) => {
        const p = request.params as { import_id: string; bulk_id: number };
        return getImportBulk(db, request.club!.id, p.import_id, p.bulk_id);
      },
    });

    // ---- groups ----
    const GroupParams = S.IdParams;
    app.get(`${BASE}/members_groups`, {
      config: api({ permit: 'BL:Api:MembersGroups:Index', auth: 'Token', context: 'LoyaltyClub' }),
      schema: { summary: 'List Member Groups', tags: ['Member Groups'], params: S.SlugParams, querystring: GroupListQuery, response: { 200: Type.Object({ members_groups: Type.Array(S.GroupSchema), pagination_info: PaginationInfoSchema }) } },
      handler: async (request) => {
        const q = request.query as ListQuery & { ids?: number[] };
        const { groups, total } = await listGroups(db, request.club!.id, { ...q, orderBy: orderBy(q, GROUP_SORT, { by: 'id' }) });
        return { members_groups: groups, pagination_info: paginationInfo(total, q.page_no, q.per_page) };
      },
    });
    app.post(`${BASE}/members_groups`, {
      config: api({ permit: 'BL:Api:MembersGroups:Create', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: { summary: 'Create Member Group', tags: ['Member Groups'], params: S.SlugParams, body: S.GroupBody, response: { 201: S.GroupSchema } },
      handler: async (request, reply) => reply.code(201).send(await createGroup(db, request.club!.id, request.body as { name: string; description?: string | null })),
    });
    app.get(`${BASE}/members_groups/:id`, {
      config: api({ permit: 'BL:Api:MembersGroups:Show', auth: 'Token', context: 'LoyaltyClub' }),
      schema: { summary: 'Show Member Group', tags: ['Member Groups'], params: GroupParams, response: { 200: S.GroupSchema } },
      handler: async (request) => getGroup(db, request.club!.id, (request.params as { id: number }).id),
    });
    app.put(`${BASE}/members_groups/:id`, {
      config: api({ permit: 'BL:Api:MembersGroups:Update', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: { summary: 'Update Member Group', tags: ['Member Groups'], params: GroupParams, body: S.GroupUpdateBody, response: { 200: S.GroupSchema } },
      handler: async (request) => updateGroup(db, request.club!.id, (request.params as { id: number }).id, request.body as { name?: string; description?: string | null }),
    });
    app.delete(`${BASE}/members_groups/:id`, {
      config: api({ permit: 'BL:Api:MembersGroups:Destroy', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: { summary: 'Destroy Member Group', tags: ['Member Groups'], params: GroupParams },
      handler: async (request, reply) => {
        await deleteGroup(db, request.club!.id, (request.params as { id: number }).id);
        return reply.code(204).send();
      },
    });
    app.get(`${BASE}/members_groups/:id/members`, {
      config: api({ permit: 'BL:Api:MembersGroups:Members:Index', auth: 'Token', context: 'LoyaltyClub' }),
      schema: { summary: 'List Member Group Members', tags: ['Member Groups'], params: GroupParams, querystring: PageQuery, response: { 200: Type.Object({ member_ids: Type.Array(Type.Integer()), pagination_info: PaginationInfoSchema }) } },
      handler: async (request) => {
        const q = request.query as { page_no: number; per_page: number };
        const { ids, total } = await listGroupMemberIds(db, request.club!.id, (request.params as { id: number }).id, q.page_no, q.per_page);
        return { member_ids: ids, pagination_info: paginationInfo(total, q.page_no, q.per_page) };
      },
    });
    app.post(`${BASE}/members_groups/:id/members`, {
      config: api({ permit: 'BL:Api:MembersGroups:Members:Create', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: { summary: 'Add Members to Group', tags: ['Member Groups'], params: GroupParams, body: S.GroupMembersBody, response: { 200: S.GroupSchema } },
      handler: async (request) => addGroupMembers(db, request.club!.id, (request.params as { id: number }).id, (request.body as { member_ids: number[] }).member_ids),
    });
    app.delete(`${BASE}/members_groups/:id/members`, {
      config: api({ permit: 'BL:Api:MembersGroups:Members:Destroy', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: {
        summary: 'Remove Members from Group',
        tags: ['Member Groups'],
        params: GroupParams,
        querystring: Type.Object({ member_ids: Type.Array(S.IdValue(), { minItems: 1, maxItems: 1000 }) }, { additionalProperties: false }),
        response: { 200: S.GroupSchema },
      },
      handler: async (request) => removeGroupMembers(db, request.club!.id, (request.params as { id: number }).id, (request.query as { member_ids: number[] }).member_ids),
    });

    // ---- webhooks (members changes subscriptions) ----
    const SUBS = `${BASE}/members_changes_subscriptions`;
    app.get(SUBS, {
      config: api({ permit: 'BL:Api:MembersChangesSubscriptions:Index', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: { summary: 'List Members Changes Subscriptions', tags: ['Webhooks'], params: S.SlugParams, querystring: PageQuery, response: { 200: Type.Object({ members_changes_subscriptions: Type.Array(S.SubscriptionSchema), pagination_info: PaginationInfoSchema }) } },
      handler: async (request) => {
        const q = request.query as { page_no: number; per_page: number };
        const { items, total } = await listSubscriptions(db, request.club!.id, q.page_no, q.per_page);
        return { members_changes_subscriptions: items, pagination_info: paginationInfo(total, q.page_no, q.per_page) };
      },
    });
    app.post(SUBS, {
      config: api({ permit: 'BL:Api:MembersChangesSubscriptions:Create', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: { summary: 'Create Members Changes Subscription', tags: ['Webhooks'], params: S.SlugParams, body: S.SubscriptionBody, response: { 201: S.SubscriptionSchema } },
      handler: async (request, reply) => reply.code(201).send(await createSubscription(db, request.club!.id, request.body as any, webhooks)),
    });
    app.get(`${SUBS}/:id`, {
      config: api({ permit: 'BL:Api:MembersChangesSubscriptions:Show', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: { summary: 'Show Members Changes Subscription', tags: ['Webhooks'], params: S.IdParams, response: { 200: S.SubscriptionSchema } },
      handler: async (request) => getSubscription(db, request.club!.id, (request.params as { id: number }).id),
    });
    app.put(`${SUBS}/:id`, {
      config: api({ permit: 'BL:Api:MembersChangesSubscriptions:Update', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: { summary: 'Update Members Changes Subscription', tags: ['Webhooks'], params: S.IdParams, body: S.SubscriptionUpdateBody, response: { 200: S.SubscriptionSchema } },
      handler: async (request) => updateSubscription(db, request.club!.id, (request.params as { id: number }).id, request.body as any, webhooks),
    });
    app.delete(`${SUBS}/:id`, {
      config: api({ permit: 'BL:Api:MembersChangesSubscriptions:Destroy', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: { summary: 'Destroy Members Changes Subscription', tags: ['Webhooks'], params: S.IdParams },
      handler: async (request, reply) => {
        await deleteSubscription(db, request.club!.id, (request.params as { id: number }).id);
        return reply.code(204).send();
      },
    });
  };
}
