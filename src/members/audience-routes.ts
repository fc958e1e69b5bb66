// Audiences API: `/v1/audiences` CRUD, plus counting a stored audience and previewing inline conditions.
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import type { Queryable } from '../db/connection.ts';
import { api } from '../platform/context.ts';
import { ApiError, notFound, notAllowed, Violations } from '../platform/errors.ts';
import { limitOffset, listQuery, orderBy, paginationInfo, PaginationInfoSchema, type ListQuery, selectPage } from '../platform/pagination.ts';
import { Id, StringEnum, Timestamp } from '../platform/schema.ts';
import type { DomainModule } from '../platform/services.ts';
import { LIMITS, type AudienceCondition, type MemberSchemaLike } from './audience-conditions.ts';
import {
  CHANNELS,
  checkGroupsExist,
  countAudience,
  findAudience,
  insertAudience,
  loadMemberSchema,
  rememberCount,
  updateAudience,
  validateConditions,
  type AudienceRecord,
  type Channel,
} from './audiences.ts';

const PERMIT = (action: string) => `Messages:Api:Audiences:${action}`;
const meta = (action: string) => api({ permit: PERMIT(action), auth: 'UserToken', context: 'LoyaltyClub' });

// Conditions are checked against the club's member schema by `validateConditions`, which reports
// in the same 422 tree; the request schema only fixes the outer shape.
const Conditions = Type.Array(
  Type.Unknown({
    description:
      'A condition `{condition_group, field, operator, value}` or `{condition_group: "any_of", conditions: [...]}` — see docs/decisions.md "Audiences".',
  }),
  { maxItems: LIMITS.maxConditions },
);

const AudienceSchema = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  conditions: Type.Array(Type.Unknown()),
  members_count: Type.Union([Type.Integer(), Type.Null()]),
  created_at: Timestamp,
  updated_at: Timestamp,
});

const IdParams = Type.Object({ id: Id });
const CountSchema = Type.Object({
  members_count: Type.Integer(),
  reachable_count: Type.Optional(Type.Integer()),
  sample_member_ids: Type.Array(Type.Integer()),
});

const SORT_COLUMNS = { id: 'id', name: 'name', created_at: 'created_at', updated_at: 'updated_at' };
const ListSchema = listQuery({ defaultPerPage: 25, maxPerPage: 100, sortable: Object.keys(SORT_COLUMNS) });

function present(a: AudienceRecord) {
  return {
    id: a.id,
    name: a.name,
    conditions: a.conditions,
    members_count: a.members_count,
    created_at: a.created_at.toISOString(),
    updated_at: a.updated_at.toISOString(),
  };
}

/** `:id`, already bounded by the `Id` schema (anything else was a 404). */
function parseId(request: FastifyRequest): number {
  return (request.params as { id: number }).id;
}

/** The payload's conditions against the club schema and its groups, under `prefix` in the tree. */
async function checkConditions(db: Queryable, clubId: number, schema: MemberSchemaLike, conditions: unknown, prefix: string[]): Promise<void> {
  const v = new Violations().merge(prefix, validateConditions(conditions, schema));
  v.throwIfAny();
  v.merge(prefix, await checkGroupsExist(db, clubId, conditions as AudienceCondition[]));
  v.throwIfAny();
}

export const audienceRoutes: DomainModule = (app, { db }) => {
  app.get('/v1/audiences', {
    config: meta('Index'),
    schema: {
      summary: 'List Audiences',
      description: '`members_count` is the size last computed (on create, update, show or count).',
      tags: ['Audiences'],
      querystring: ListSchema,
      response: { 200: Type.Object({ audiences: Type.Array(AudienceSchema), pagination_info: PaginationInfoSchema }) },
    },
    handler: async (request) => {
      const q = request.query as ListQuery;
      const clubId = request.club!.id;
      const { rows, total } = await selectPage<AudienceRecord>(
        db,
        'id, loyalty_club_id, name, conditions, members_count, counted_at, created_at, updated_at',
        'FROM audiences WHERE loyalty_club_id = $1',
        `${orderBy(q, SORT_COLUMNS, { by: 'id' })} ${limitOffset(q)}`,
        [clubId],
      );
      return { audiences: rows.map(present), pagination_info: paginationInfo(total, q.page_no, q.per_page) };
    },
  });

  app.get('/v1/audiences/:id', {
    config: meta('Get'),
    schema: { summary: 'Show Audience', tags: ['Audiences'], params: IdParams, response: { 200: Type.Object({ audience: AudienceSchema }) } },
    handler: async (request) => {
      const clubId = request.club!.id;
      const audience = await findAudience(db, clubId, parseId(request));
      if (!audience) throw notFound('Audience');
      return { audience: present(await withFreshCount(db, clubId, audience)) };
    },
  });

  app.post('/v1/audiences', {
    config: meta('Create'),
    schema: {
      summary: 'Create Audience',
      tags: ['Audiences'],
      body: Type.Object(
        {
          audience: Type.Object(
            { name: Type.String({ minLength: 1, maxLength: 255 }), conditions: Conditions },
            { additionalProperties: false },
          ),
        },
        { additionalProperties: false },
      ),
      response: { 200: Type.Object({ audience: AudienceSchema }) },
    },
    handler: async (request) => {
      const clubId = request.club!.id;
      const body = (request.body as { audience: { name: string; conditions: AudienceCondition[] } }).audience;
      const schema = await loadMemberSchema(db, clubId);
      await checkConditions(db, clubId, schema, body.conditions, ['audience', 'conditions']);
      const audience = await insertAudience(db, clubId, body);
      return { audience: present(await withFreshCount(db, clubId, audience, schema)) };
    },
  });

  app.put('/v1/audiences/:id', {
    config: meta('Update'),
    schema: {
      summary: 'Update Audience',
      tags: ['Audiences'],
      params: IdParams,
      body: Type.Object(
        {
          audience: Type.Object(
            { name: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })), conditions: Type.Optional(Conditions) },
            { additionalProperties: false },
          ),
        },
        { additionalProperties: false },
      ),
      response: { 200: Type.Object({ audience: AudienceSchema }) },
    },
    handler: async (request) => {
      const clubId = request.club!.id;
      const id = parseId(request);
      const body = (request.body as { audience: { name?: string; conditions?: AudienceCondition[] } }).audience;
      const schema = await loadMemberSchema(db, clubId);
      // Existence first (404), then the payload against the schema (422).
      if (!(await findAudience(db, clubId, id))) throw notFound('Audience');
      if (body.conditions !== undefined) await checkConditions(db, clubId, schema, body.conditions, ['audience', 'conditions']);
      const audience = await updateAudience(db, clubId, id, body);
      if (!audience) throw notFound('Audience');
      return { audience: present(await withFreshCount(db, clubId, audience, schema)) };
    },
  });

  app.delete('/v1/audiences/:id', {
    config: meta('Destroy'),
    schema: { summary: 'Delete Audience', tags: ['Audiences'], params: IdParams, response: { 204: Type.Null() } },
    handler: async (request, reply) => {
      const clubId = request.club!.id;
      const id = parseId(request);
      if (!(await findAudience(db, clubId, id))) throw notFound('Audience');
      // A sending still to be prepared resolves its audience later: keep the audience until then.
      const { rows } = await db.query<{ id: number; status: string }>(
        `SELECT id, status FROM sendings WHERE loyalty_club_id = $1 AND audience_type = 'reference' AND audience_id = $2
            AND status IN ('draft', 'scheduled', 'preparing') ORDER BY id LIMIT 1`,
        [clubId, id],
      );
      if (rows[0]) throw notAllowed(`Audience is used by sending ${rows[0].id}, which is ${rows[0].status}`);
      await db.query('DELETE FROM audiences WHERE loyalty_club_id = $1 AND id = $2', [clubId, id]);
      return reply.status(204).send(null);
    },
  });

  app.get('/v1/audiences/:id/count', {
    config: meta('Count'),
    schema: {
      summary: 'Count Audience',
      description: 'Members the stored audience selects now; with `channel`, also how many of them can be reached on it.',
      tags: ['Audiences'],
      params: IdParams,
      querystring: Type.Object(
        { channel: Type.Optional(StringEnum(CHANNELS)), marketing: Type.Optional(Type.Boolean({ default: true })) },
        { additionalProperties: false },
      ),
      response: { 200: CountSchema },
    },
    handler: async (request) => {
      const clubId = request.club!.id;
      const audience = await findAudience(db, clubId, parseId(request));
      if (!audience) throw notFound('Audience');
      const q = request.query as { channel?: Channel; marketing?: boolean };
      const schema = await loadMemberSchema(db, clubId);
      const result = await countStored(db, clubId, audience, schema, q);
      await rememberCount(db, audience.id, result.members_count);
      return result;
    },
  });

  app.post('/v1/audiences/preview', {
    config: meta('Count'),
    schema: {
      summary: 'Preview Audience',
      description: 'Counts the members inline conditions select, without storing them.',
      tags: ['Audiences'],
      body: Type.Object(
        {
          audience: Type.Object({ conditions: Conditions }, { additionalProperties: false }),
          channel: Type.Optional(StringEnum(CHANNELS)),
          marketing: Type.Optional(Type.Boolean({ default: true })),
        },
        { additionalProperties: false },
      ),
      response: { 200: CountSchema },
    },
    handler: async (request) => {
      const clubId = request.club!.id;
      const body = request.body as { audience: { conditions: AudienceCondition[] }; channel?: Channel; marketing?: boolean };
      const schema = await loadMemberSchema(db, clubId);
      await checkConditions(db, clubId, schema, body.audience.conditions, ['audience', 'conditions']);
      return countAudience(db, clubId, body.audience.conditions, schema, { channel: body.channel, marketing: body.marketing });
    },
  });
};

/** A stored audience whose conditions no longer fit the schema (it changed) counts as unresolvable. */
async function countStored(db: Queryable, clubId: number, a: AudienceRecord, schema: MemberSchemaLike, opts: { channel?: Channel; marketing?: boolean } = {}) {
  if (!validateConditions(a.conditions, schema).empty) {
    throw new ApiError(409, `Audience ${a.id} no longer fits the member schema; update its conditions`);
  }
  return countAudience(db, clubId, a.conditions, schema, opts);
}

async function withFreshCount(db: Queryable, clubId: number, a: AudienceRecord, schema?: MemberSchemaLike): Promise<AudienceRecord> {
  const s = schema ?? (await loadMemberSchema(db, clubId));
  if (!validateConditions(a.conditions, s).empty) return a; // shown as stored; count/send report the problem
  const { members_count } = await countAudience(db, clubId, a.conditions, s, { sampleSize: 0 });
  await rememberCount(db, a.id, members_count);
  return { ...a, members_count, counted_at: new Date() };
}
