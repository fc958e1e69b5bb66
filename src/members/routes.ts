// HTTP endpoints of the members domain (v3, loyalty-club slug in the path). Thin: each handler
// reads the request and calls one service function.
import type { FastifyRequest } from 'fastify';
import { Type, type TSchema } from '@sinclair/typebox';
import { api } from '../platform/context.ts';
import { StringEnum } from '../platform/schema.ts';
import { ApiError, notFound, Violations } from '../platform/errors.ts';
import { paginationInfo, PaginationInfoSchema, PageNoSchema, orderBy, listQuery, type ListQuery } from '../platform/pagination.ts';
import type { DomainModule } from '../platform/services.ts';
import * as S from './api-schemas.ts';
import { normaliseMsisdn, type Member } from './member-input.ts';
import { checkWritable, filterMember, findClubView, listProducts, listVisibleClubs, propertyFilter } from './clubs.ts';
import { tokenAllowsClub } from '../platform/tokens.ts';
import { checkMemberSchema, loadMemberSchema, saveMemberSchema } from './schema.ts';
import {
  createMember, deleteMember, deletePushToken, findMemberByIdentifier, getMember, listMembers, listPushTokens, registerPushToken, updateMember,
  type MemberListQuery, type MemberWriteInput, type WriteSource,
} from './members.ts';
import {
  addGroupMembers, createGroup, deleteGroup, getGroup, GROUP_SORT, groupMemberIds, groupsOfMember, listGroups, listGroupTypes, removeGroupMembers,
  setGroupMember, updateGroup, type GroupFilters, type GroupInput,
} from './groups.ts';
import { getImport, getImportBulk, getImportBulkByRequestNumber, importRefusal, submitImportBulk, type ImportRequest } from './imports.ts';
import {
  createSubscription, deleteSubscription, getSubscription, listDeliveries, listSubscriptions, pingSubscription, redeliver, rotateSubscriptionSecret,
  updateSubscription, type WebhookSettings,
} from './webhooks.ts';

const BASE = '/v3/:loyalty_club_slug';

/** MPC's permit names (2021 docs), each followed by the name Hei used before, still accepted. */
export const PERMITS = {
  membersGet: ['BL:Api:Members:Get', 'BL:Api:Members:Show'],
  importsGet: ['BL:Api:Members:Imports:Get', 'BL:Api:Members:Imports:Show'],
  schemaGet: ['BL:Api:Schema:Get', 'BL:Api:LoyaltyClubs:Schema:Show'],
  groupsGet: ['BL:Api:MembersGroups:Get', 'BL:Api:MembersGroups:Show'],
  groupMembersAdd: ['BL:Api:MembersGroups:Members:Add', 'BL:Api:MembersGroups:Members:Create'],
  groupMembersRemove: ['BL:Api:MembersGroups:Members:Remove', 'BL:Api:MembersGroups:Members:Destroy'],
  groupMembersList: ['BL:Api:MembersGroups:Members:List', 'BL:Api:MembersGroups:Members:Index'],
  memberGroups: 'BL:Api:Members:Groups',
} as const;

function source(request: FastifyRequest): WriteSource {
  const sub = request.headers['x-subproduct-name'];
  return { product: request.productName!, subproduct: typeof sub === 'string' && sub.length <= 100 ? sub : null };
}

const GroupListQuery = listQuery(
  { defaultPerPage: 1000, maxPerPage: 1000, sortable: Object.keys(GROUP_SORT) },
  {
    ids: Type.Optional(Type.Array(S.IdValue(), { maxItems: 1000 })),
    name: Type.Optional(Type.String({ maxLength: 200 })),
    type: Type.Optional(Type.String({ maxLength: 200 })),
    automatic: Type.Optional(Type.Boolean()),
    system: Type.Optional(Type.Boolean()),
    search: Type.Optional(Type.String({ maxLength: 200 })),
  },
);
const ClubListQuery = Type.Object(
  {
    page_no: PageNoSchema(),
    per_page: Type.Integer({ minimum: 1, maximum: 1000, default: 1000 }),
    type: Type.Optional(StringEnum(['REGULAR', 'TENANTS', 'ICOM'])),
    customer_id: Type.Optional(S.IdValue()),
  },
  { additionalProperties: false },
);
const GroupMembersQuery = Type.Object(
  // `users_only` (2021) is accepted: members linked to users do not exist in Hei, so it never narrows.
  { page_no: PageNoSchema(), per_page: Type.Integer({ minimum: 1, maximum: 1000, default: 1000 }), users_only: Type.Optional(Type.Boolean()) },
  { additionalProperties: false },
);
const PageQuery = Type.Object(
  { page_no: PageNoSchema(), per_page: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }) },
  { additionalProperties: false },
);

export function memberRoutes(webhooks: WebhookSettings): DomainModule {
  return (app, { db }) => {
    /** The member a `by_msisdn` / `by_email` path names; an MSISDN that is none → 422. */
    const memberByPath = async (request: FastifyRequest) => {
      const p = request.params as { msisdn?: string; email?: string };
      const kind = p.msisdn !== undefined ? 'msisdn' : 'email';
      if (kind === 'msisdn' && normaliseMsisdn(p.msisdn!) === null) new Violations().add(['msisdn'], 'invalid_msisdn').throwIfAny();
      const member = await findMemberByIdentifier(db, request.club!.id, kind, (p.msisdn ?? p.email)!);
      if (!member) throw notFound('Member');
      return member;
    };

    // A product registered with `filtered_member_properties` reads and writes only those properties.
    const allowedFor = new WeakMap<FastifyRequest, Set<string> | null>();
    const allowed = async (request: FastifyRequest) => {
      if (!allowedFor.has(request)) allowedFor.set(request, await propertyFilter(db, request.club!.id, request.productName!));
      return allowedFor.get(request)!;
    };
    const productScoped = {
      preHandler: async (request: FastifyRequest) => checkWritable((request.body as { properties?: unknown } | undefined)?.properties, await allowed(request)),
      preSerialization: async (request: FastifyRequest, reply: { statusCode: number }, payload: any) => {
        // Error answers (e.g. a 401 before any club was resolved) carry no member.
        if (!request.club || reply.statusCode >= 400) return payload;
        const filter = await allowed(request);
        if (!filter || !payload || typeof payload !== 'object') return payload;
        if (Array.isArray(payload.members)) return { ...payload, members: payload.members.map((m: Member) => filterMember(m, filter)) };
        return 'properties' in payload ? filterMember(payload, filter) : payload;
      },
    };

    // ---- schema (Public API › Loyalty Club › Show Schema; update is ours) ----
    // ---- loyalty clubs and products (2021 › Loyalty Clubs) ----
    app.get('/v3/loyalty_clubs', {
      config: api({ permit: 'BL:Api:LoyaltyClubs:ListMine', auth: 'Token', context: 'Global' }),
      schema: { summary: 'List Loyalty Clubs', tags: ['Loyalty Club'], querystring: ClubListQuery, response: { 200: Type.Object({ loyalty_clubs: Type.Array(S.LoyaltyClubSchema), pagination_info: PaginationInfoSchema }) } },
      handler: async (request) => {
        const q = request.query as { type?: string; customer_id?: number; page_no: number; per_page: number };
        const { clubs, total } = await listVisibleClubs(db, request.auth!.client!, q);
        return { loyalty_clubs: clubs, pagination_info: paginationInfo(total, q.page_no, q.per_page) };
      },
    });
    app.get('/v3/loyalty_clubs/by_community_id/:community_id', {
      config: api({ permit: 'BL:Api:LoyaltyClubs:Get', auth: 'Token', context: 'Global' }),
      schema: { summary: 'Show Loyalty Club by Community Id', tags: ['Loyalty Club'], params: Type.Object({ community_id: S.IdValue() }), response: { 200: S.LoyaltyClubSchema } },
      handler: async (request) => {
        // A club the token may not see answers like a missing one.
        const club = await findClubView(db, { community_id: (request.params as { community_id: number }).community_id });
        if (!club || !tokenAllowsClub(request.auth!.client!, club.id)) throw notFound('Loyalty club');
        return club;
      },
    });
    app.get('/v3/loyalty_clubs/:loyalty_club_slug', {
      config: api({ permit: 'BL:Api:LoyaltyClubs:Get', auth: 'Token', context: 'LoyaltyClub' }),
      schema: { summary: 'Show Loyalty Club', tags: ['Loyalty Club'], params: S.SlugParams, response: { 200: S.LoyaltyClubSchema } },
      handler: async (request) => (await findClubView(db, { id: request.club!.id }))!,
    });
    app.get(`${BASE}/products`, {
      config: api({ permit: 'BL:Api:Products:Index', auth: 'Token', context: 'LoyaltyClub' }),
      schema: { summary: 'List Products', tags: ['Loyalty Club'], params: S.SlugParams, response: { 200: Type.Array(S.ProductSchema) } },
      handler: async (request) => listProducts(db, request.club!.id),
    });

    // MPC's path is `member_schema`; `schema` stays for existing clients.
    for (const path of ['member_schema', 'schema']) {
      app.get(`${BASE}/${path}`, {
        config: api({ permit: PERMITS.schemaGet, auth: 'Token', context: 'LoyaltyClub' }),
        schema: { summary: path === 'schema' ? 'Show Schema (alias of member_schema)' : 'Show Schema', tags: ['Loyalty Club'], params: S.SlugParams },
        handler: async (request) => loadMemberSchema(db, request.club!.id),
      });
    }
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
      ...productScoped,
      config: api({ permit: 'BL:Api:Members:Index', auth: 'Token', context: 'LoyaltyClub' }),
      schema: { summary: 'List Members', tags: ['Members'], params: S.SlugParams, querystring: S.MemberListQuery, response: { 200: S.MemberListResponse } },
      handler: async (request) => {
        const q = request.query as MemberListQuery;
        const { members, total } = await listMembers(db, request.club!.id, q);
        return { members, pagination_info: paginationInfo(total, q.page_no, q.per_page) };
      },
    });
    app.post(`${BASE}/members`, {
      ...productScoped,
      config: api({ permit: 'BL:Api:Members:Create', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: { summary: 'Create Member', tags: ['Members'], params: S.SlugParams, body: S.CreateMemberBody, response: { 201: S.MemberSchema } },
      handler: async (request, reply) => {
        const member = await createMember(db, request.club!.id, request.body as MemberWriteInput, source(request));
        return reply.code(201).send(member);
      },
    });
    app.get(`${BASE}/members/by_msisdn/:msisdn`, {
      ...productScoped,
      config: api({ permit: PERMITS.membersGet, auth: 'Token', context: 'LoyaltyClub' }),
      schema: { summary: 'Find Member by MSISDN', tags: ['Members'], params: S.MsisdnParams, response: { 200: S.MemberSchema } },
      handler: async (request) => memberByPath(request),
    });
    app.get(`${BASE}/members/by_email/:email`, {
      ...productScoped,
      config: api({ permit: PERMITS.membersGet, auth: 'Token', context: 'LoyaltyClub' }),
      schema: { summary: 'Find Member by E-mail', tags: ['Members'], params: S.EmailParams, response: { 200: S.MemberSchema } },
      handler: async (request) => memberByPath(request),
    });
    app.get(`${BASE}/members/:id`, {
      ...productScoped,
      config: api({ permit: PERMITS.membersGet, auth: 'Token', context: 'LoyaltyClub' }),
      schema: { summary: 'Show Member', tags: ['Members'], params: S.IdParams, response: { 200: S.MemberSchema } },
      handler: async (request) => getMember(db, request.club!.id, (request.params as { id: number }).id),
    });
    app.put(`${BASE}/members/:id`, {
      ...productScoped,
      config: api({ permit: 'BL:Api:Members:Update', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: { summary: 'Update Member', tags: ['Members'], params: S.IdParams, body: S.UpdateMemberBody, response: { 200: S.MemberSchema } },
      handler: async (request) => updateMember(db, request.club!.id, (request.params as { id: number }).id, request.body as MemberWriteInput, source(request)),
    });
    app.delete(`${BASE}/members/:id`, {
      ...productScoped,
      config: api({ permit: 'BL:Api:Members:Destroy', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: {
        summary: 'Destroy Member',
        tags: ['Members'],
        params: S.IdParams,
        // Accepted (both spellings of the docs); unsubscribe messages are the messaging side's.
        querystring: Type.Object({ send_email_unsubscribe_message: Type.Optional(Type.Boolean()), send_unsubscribe_message: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
        response: { 200: S.MemberSchema },
      },
      handler: async (request) => deleteMember(db, request.club!.id, (request.params as { id: number }).id, source(request)),
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
      config: api({ permit: 'BL:Api:Members:Imports:Create', auth: 'Token', context: 'LoyaltyClub' }),
      schema: { summary: 'Create Members Import Request', tags: ['Members Imports'], params: S.SlugParams, body: S.ImportBody, response: { 200: S.BulkSchema, 201: S.BulkSchema } },
      handler: async (request, reply) => {
        const body = request.body as ImportRequest;
        const schema = await loadMemberSchema(db, request.club!.id);
        const refusal = importRefusal(body, schema.identifiers);
        if (refusal) throw new ApiError(422, refusal);
        const { bulk, existing } = await submitImportBulk(db, request.club!.id, body, request.productName!);
        return reply.code(existing ? 200 : 201).send(bulk);
      },
    });
    app.get(`${BASE}/members/imports/:import_id`, {
      config: api({ permit: PERMITS.importsGet, auth: 'Token', context: 'LoyaltyClub' }),
      schema: {
        summary: 'Show Members Import Status',
        tags: ['Members Imports'],
        params: Type.Object({ loyalty_club_slug: Type.String(), import_id: Type.String({ maxLength: 100 }) }),
        response: { 200: S.ImportSchema },
      },
      handler: async (request) => getImport(db, request.club!.id, (request.params as { import_id: string }).import_id),
    });
    app.get(`${BASE}/members/imports/:import_id/bulks/by_request_number/:request_number`, {
      config: api({ permit: PERMITS.importsGet, auth: 'Token', context: 'LoyaltyClub' }),
      schema: {
        summary: 'Show Members Import Bulk Status by Request Number',
        tags: ['Members Imports'],
        params: Type.Object({ loyalty_club_slug: Type.String(), import_id: Type.String({ maxLength: 100 }), request_number: Type.Integer({ minimum: 0, maximum: 2_147_483_647 }) }),
        response: { 200: S.BulkSchema },
      },
      handler: async (request) => {
        const p = request.params as { import_id: string; request_number: number };
        return getImportBulkByRequestNumber(db, request.club!.id, p.import_id, p.request_number);
      },
    });
    app.get(`${BASE}/members/imports/:import_id/bulks/:bulk_id`, {
      config: api({ permit: PERMITS.importsGet, auth: 'Token', context: 'LoyaltyClub' }),
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

    // ---- groups (2021 › Members Groups; bulk add / remove by `member_ids` is Hei's extension) ----
    const GroupParams = S.IdParams;
    const GroupMemberParams = Type.Object({ loyalty_club_slug: Type.String(), id: S.IdValue(), member_id: S.IdValue() });
    const wrapped = { 200: S.GroupEnvelope };
    app.get(`${BASE}/members_groups`, {
      config: api({ permit: 'BL:Api:MembersGroups:Index', auth: 'Token', context: 'LoyaltyClub' }),
      schema: { summary: 'List Members Groups', tags: ['Member Groups'], params: S.SlugParams, querystring: GroupListQuery, response: { 200: S.GroupListResponse } },
      handler: async (request) => {
        const q = request.query as ListQuery & GroupFilters;
        const { groups, total } = await listGroups(db, request.club!.id, { ...q, orderBy: orderBy(q, GROUP_SORT, { by: 'id' }) });
        return { members_groups: groups, pagination_info: paginationInfo(total, q.page_no, q.per_page) };
      },
    });
    app.get(`${BASE}/members_groups/types`, {
      config: api({ permit: 'BL:Api:MembersGroups:Types:Index', auth: 'Token', context: 'LoyaltyClub' }),
      schema: {
        summary: 'List Members Group Types',
        tags: ['Member Groups'],
        params: S.SlugParams,
        response: { 200: Type.Object({ members_group_types: Type.Array(Type.Object({ name: Type.String(), system: Type.Boolean() })) }) },
      },
      handler: async (request) => ({ members_group_types: await listGroupTypes(db, request.club!.id) }),
    });
    app.post(`${BASE}/members_groups`, {
      config: api({ permit: 'BL:Api:MembersGroups:Create', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: { summary: 'Create Members Group', tags: ['Member Groups'], params: S.SlugParams, body: S.GroupBody, response: { 201: S.GroupEnvelope } },
      handler: async (request, reply) => {
        const input = (request.body as { members_group: GroupInput & { name: string } }).members_group;
        return reply.code(201).send({ members_group: await createGroup(db, request.club!.id, input) });
      },
    });
    app.get(`${BASE}/members_groups/:id`, {
      config: api({ permit: PERMITS.groupsGet, auth: 'Token', context: 'LoyaltyClub' }),
      schema: { summary: 'Show Members Group', tags: ['Member Groups'], params: GroupParams, response: wrapped },
      handler: async (request) => ({ members_group: await getGroup(db, request.club!.id, (request.params as { id: number }).id) }),
    });
    app.put(`${BASE}/members_groups/:id`, {
      config: api({ permit: 'BL:Api:MembersGroups:Update', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: { summary: 'Update Members Group', tags: ['Member Groups'], params: GroupParams, body: S.GroupUpdateBody, response: wrapped },
      handler: async (request) => {
        const input = (request.body as { members_group: GroupInput }).members_group;
        return { members_group: await updateGroup(db, request.club!.id, (request.params as { id: number }).id, input) };
      },
    });
    app.delete(`${BASE}/members_groups/:id`, {
      config: api({ permit: 'BL:Api:MembersGroups:Destroy', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: { summary: 'Destroy Members Group', tags: ['Member Groups'], params: GroupParams, response: wrapped },
      handler: async (request) => ({ members_group: await deleteGroup(db, request.club!.id, (request.params as { id: number }).id) }),
    });
    app.get(`${BASE}/members_groups/:id/members`, {
      ...productScoped,
      config: api({ permit: PERMITS.groupMembersList, auth: 'Token', context: 'LoyaltyClub' }),
      schema: { summary: 'List Members Group Members', tags: ['Member Groups'], params: GroupParams, querystring: GroupMembersQuery, response: { 200: S.MemberListResponse } },
      handler: async (request) => {
        const q = request.query as { page_no: number; per_page: number };
        const clubId = request.club!.id;
        const { ids, total } = await groupMemberIds(db, clubId, (request.params as { id: number }).id, q.page_no, q.per_page);
        const { members } = ids.length ? await listMembers(db, clubId, { ids, page_no: 1, per_page: ids.length }) : { members: [] };
        return { members, pagination_info: paginationInfo(total, q.page_no, q.per_page) };
      },
    });
    app.post(`${BASE}/members_groups/:id/members/:member_id`, {
      config: api({ permit: PERMITS.groupMembersAdd, auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: { summary: 'Add Member to Members Group', tags: ['Member Groups'], params: GroupMemberParams, response: { 200: Type.Object({}) } },
      handler: async (request) => {
        const p = request.params as { id: number; member_id: number };
        await setGroupMember(db, request.club!.id, p.id, p.member_id, true);
        return {};
      },
    });
    app.delete(`${BASE}/members_groups/:id/members/:member_id`, {
      config: api({ permit: PERMITS.groupMembersRemove, auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: { summary: 'Remove Member from Members Group', tags: ['Member Groups'], params: GroupMemberParams, response: { 200: Type.Object({}) } },
      handler: async (request) => {
        const p = request.params as { id: number; member_id: number };
        await setGroupMember(db, request.club!.id, p.id, p.member_id, false);
        return {};
      },
    });
    app.post(`${BASE}/members_groups/:id/members`, {
      config: api({ permit: PERMITS.groupMembersAdd, auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: { summary: 'Add Members to Members Group (bulk)', tags: ['Member Groups'], params: GroupParams, body: S.GroupMembersBody, response: wrapped },
      handler: async (request) => ({
        members_group: await addGroupMembers(db, request.club!.id, (request.params as { id: number }).id, (request.body as { member_ids: number[] }).member_ids),
      }),
    });
    app.delete(`${BASE}/members_groups/:id/members`, {
      config: api({ permit: PERMITS.groupMembersRemove, auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: {
        summary: 'Remove Members from Members Group (bulk)',
        tags: ['Member Groups'],
        params: GroupParams,
        querystring: Type.Object({ member_ids: Type.Array(S.IdValue(), { minItems: 1, maxItems: 1000 }) }, { additionalProperties: false }),
        response: wrapped,
      },
      handler: async (request) => ({
        members_group: await removeGroupMembers(db, request.club!.id, (request.params as { id: number }).id, (request.query as { member_ids: number[] }).member_ids),
      }),
    });
    // The groups of one member, by id, e-mail or MSISDN.
    const memberGroupsRoute = (path: string, params: TSchema, summary: string, find: (request: FastifyRequest) => Promise<{ id: number }>) =>
      app.get(`${BASE}/members/${path}/groups`, {
        config: api({ permit: PERMITS.memberGroups, auth: 'Token', context: 'LoyaltyClub' }),
        schema: { summary, tags: ['Member Groups'], params, querystring: GroupMembersQuery, response: { 200: S.GroupListResponse } },
        handler: async (request) => {
          const q = request.query as { page_no: number; per_page: number };
          const member = await find(request);
          const { groups, total } = await groupsOfMember(db, request.club!.id, member.id, q.page_no, q.per_page);
          return { members_groups: groups, pagination_info: paginationInfo(total, q.page_no, q.per_page) };
        },
      });
    memberGroupsRoute(':id', S.IdParams, "List Member's Groups", (request) => getMember(db, request.club!.id, (request.params as { id: number }).id));
    memberGroupsRoute('by_email/:email', S.EmailParams, "List Member's Groups by E-mail", memberByPath);
    memberGroupsRoute('by_msisdn/:msisdn', S.MsisdnParams, "List Member's Groups by MSISDN", memberByPath);

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
    app.get(`${SUBS}/:id/deliveries`, {
      config: api({ permit: 'BL:Api:MembersChangesSubscriptions:Deliveries:Index', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: {
        summary: 'List Members Changes Deliveries',
        tags: ['Webhooks'],
        params: S.IdParams,
        querystring: PageQuery,
        response: { 200: Type.Object({ deliveries: Type.Array(S.DeliverySchema), pagination_info: PaginationInfoSchema }) },
      },
      handler: async (request) => {
        const q = request.query as { page_no: number; per_page: number };
        const { items, total } = await listDeliveries(db, request.club!.id, (request.params as { id: number }).id, q.page_no, q.per_page);
        return { deliveries: items, pagination_info: paginationInfo(total, q.page_no, q.per_page) };
      },
    });
    app.post(`${SUBS}/:id/deliveries/:delivery_id/redeliver`, {
      config: api({ permit: 'BL:Api:MembersChangesSubscriptions:Deliveries:Redeliver', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: {
        summary: 'Redeliver Members Changes Delivery',
        tags: ['Webhooks'],
        params: Type.Object({ loyalty_club_slug: Type.String(), id: S.IdValue(), delivery_id: S.IdValue() }),
        response: { 202: Type.Object({ events_count: Type.Integer() }) },
      },
      handler: async (request, reply) => {
        const p = request.params as { id: number; delivery_id: number };
        return reply.code(202).send(await redeliver(db, request.club!.id, p.id, p.delivery_id));
      },
    });
    app.post(`${SUBS}/:id/ping`, {
      config: api({ permit: 'BL:Api:MembersChangesSubscriptions:Ping', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: { summary: 'Ping Members Changes Subscription', tags: ['Webhooks'], params: S.IdParams, response: { 200: S.DeliverySchema } },
      handler: async (request) => pingSubscription(db, request.club!.id, (request.params as { id: number }).id, webhooks),
    });
    app.post(`${SUBS}/:id/rotate_secret`, {
      config: api({ permit: 'BL:Api:MembersChangesSubscriptions:Update', auth: 'UserToken', context: 'LoyaltyClub' }),
      schema: {
        summary: 'Rotate Members Changes Subscription Secret',
        tags: ['Webhooks'],
        params: S.IdParams,
        body: Type.Optional(Type.Object({ overlap_seconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 30 * 86400 })) }, { additionalProperties: false })),
        response: { 200: S.SubscriptionSchema },
      },
      handler: async (request) =>
        rotateSubscriptionSecret(db, request.club!.id, (request.params as { id: number }).id, (request.body as { overlap_seconds?: number } | undefined)?.overlap_seconds ?? 86400),
    });
  };
}
