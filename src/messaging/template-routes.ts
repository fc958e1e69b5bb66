// Standalone templates (`/v1/messages/templates`, §13.14) and wrappers (`/v1/messages/wrappers`,
// DECISIONS "Wrappers"). A channel referencing a template gets a copy, so editing or deleting a
// standalone template never changes a message.
import { Type } from '@sinclair/typebox';
import type { Queryable } from '../db/connection.ts';
import { api } from '../platform/context.ts';
import { ApiError, notAllowed, Violations } from '../platform/errors.ts';
import { limitOffset, listQuery, orderBy, paginationInfo, type ListQuery, selectPage } from '../platform/pagination.ts';
import { StringEnum } from '../platform/schema.ts';
import type { Api, Services } from '../platform/services.ts';
import {
  ErrorSchema,
  IdParams,
  parseId,
  StandaloneTemplatePayload,
  StandaloneTemplateSchema,
  TEMPLATE_TYPES,
  WRAPPER_KINDS,
  WrapperPayload,
  WrapperSchema,
  wrap,
  wrapList,
  type StandaloneTemplateInput,
  type WrapperInput,
} from './schemas.ts';
import {
  checkContent,
  checkWrapper,
  checkWrapperBody,
  cleanContent,
  findStandaloneTemplate,
  findWrapper,
  insertTemplate,
  serializeStandaloneTemplate,
  serializeWrapper,
  type WrapperRow,
} from './templates.ts';

const ctx = { auth: 'UserToken', context: 'LoyaltyClub' } as const;
const errors = { 403: ErrorSchema, 404: ErrorSchema, 405: ErrorSchema, 422: Type.Object({ error: Type.String(), details: Type.Any() }) };
const like = (s: string) => `%${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

const TEMPLATE_SORT = { created_at: 'created_at', updated_at: 'updated_at', name: 'name', id: 'id' };
const TemplatesQuery = listQuery(
  { defaultPerPage: 100, maxPerPage: 100, sortable: Object.keys(TEMPLATE_SORT) },
  { type: Type.Optional(Type.Array(StringEnum(TEMPLATE_TYPES), { maxItems: TEMPLATE_TYPES.length })), search: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) },
);
const TemplateBody = Type.Object({ template: StandaloneTemplatePayload }, { additionalProperties: false });

const WRAPPER_SORT = { created_at: 'created_at', updated_at: 'updated_at', name: 'name', id: 'id' };
const WrappersQuery = listQuery(
  { defaultPerPage: 100, maxPerPage: 100, sortable: Object.keys(WRAPPER_SORT) },
  { kind: Type.Optional(StringEnum(WRAPPER_KINDS)) },
);
const WrapperBody = Type.Object({ wrapper: WrapperPayload }, { additionalProperties: false });

async function templateOr404(db: Queryable, clubId: number, rawId: string | number) {
  const id = parseId(rawId);
  const t = id === null ? null : await findStandaloneTemplate(db, clubId, id);
  if (!t) throw new ApiError(404, 'Template not found');
  return t;
}

async function wrapperOr404(db: Queryable, clubId: number, rawId: string | number): Promise<WrapperRow> {
  const id = parseId(rawId);
  const w = id === null ? null : await findWrapper(db, clubId, id);
  if (!w) throw new ApiError(404, 'Wrapper not found');
  return w;
}

export function templateRoutes(app: Api, { db }: Services): void {
  // ----- standalone templates -----
  app.get('/v1/messages/templates', {
    config: api({ permit: 'Messages:Api:Templates:Index', ...ctx }),
    schema: { summary: 'List Templates', tags: ['Templates'], querystring: TemplatesQuery, response: { 200: wrapList('templates', StandaloneTemplateSchema), ...errors } },
    handler: async (request) => {
      const q = request.query as ListQuery & { type?: string[]; search?: string };
      const params: unknown[] = [request.club!.id];
      const where = ['loyalty_club_id = $1', 'standalone'];
      if (q.type?.length) where.push(`type = ANY($${params.push(q.type)}::text[])`);
      if (q.search) where.push(`name ILIKE $${params.push(like(q.search))}`);
      const { rows, total } = await selectPage<any>(
        db,
        'id, loyalty_club_id, standalone, name, type, content, wrapper_id, created_at, updated_at',
        `FROM message_templates WHERE ${where.join(' AND ')}`,
        `${orderBy(q, TEMPLATE_SORT, { by: 'created_at' })} ${limitOffset(q)}`,
        params,
      );
      return { templates: rows.map(serializeStandaloneTemplate), pagination_info: paginationInfo(total, q.page_no, q.per_page) };
    },
  });

  app.post('/v1/messages/templates', {
    config: api({ permit: 'Messages:Api:Templates:Create', ...ctx }),
    schema: { summary: 'Create Template', tags: ['Templates'], body: TemplateBody, response: { 200: wrap('template', StandaloneTemplateSchema), ...errors } },
    handler: async (request) => {
      const club = request.club!;
      const input = (request.body as { template: StandaloneTemplateInput }).template;
      const v = new Violations();
      if (input.name === undefined) v.add(['template', 'name'], 'blank');
      if (input.type === undefined) v.add(['template', 'type'], 'blank');
      if (input.content === undefined) v.add(['template', 'content'], 'blank');
      if (input.type && input.content) checkContent(v, ['template', 'content'], input.type, input.content);
      v.throwIfAny();
      await checkWrapper(db, club.id, v, ['template', 'wrapper_id'], input.wrapper_id, input.type!);
      v.throwIfAny();
      const t = await insertTemplate(db, { clubId: club.id, standalone: true, name: input.name!, type: input.type!, content: cleanContent(input.type!, input.content!), wrapperId: input.wrapper_id ?? null });
      return { template: serializeStandaloneTemplate(t) };
    },
  });

  app.get('/v1/messages/templates/:id', {
    config: api({ permit: 'Messages:Api:Templates:Get', ...ctx }),
    schema: { summary: 'Show Template', tags: ['Templates'], params: IdParams, response: { 200: wrap('template', StandaloneTemplateSchema), ...errors } },
    handler: async (request) => ({ template: serializeStandaloneTemplate(await templateOr404(db, request.club!.id, (request.params as { id: number }).id)) }),
  });

  app.put('/v1/messages/templates/:id', {
    config: api({ permit: 'Messages:Api:Templates:Update', ...ctx }),
    schema: { summary: 'Update Template', tags: ['Templates'], params: IdParams, body: TemplateBody, response: { 200: wrap('template', StandaloneTemplateSchema), ...errors } },
    handler: async (request) => {
      const club = request.club!;
      const current = await templateOr404(db, club.id, (request.params as { id: number }).id);
      const input = (request.body as { template: StandaloneTemplateInput }).template;
      const type = input.type ?? current.type;
      // Changing the type needs content of the new type; otherwise the stored content is re-checked.
      const content = input.content ?? current.content;
      const v = new Violations();
      if (input.type !== undefined && input.type !== current.type && input.content === undefined) v.add(['template', 'content'], 'blank');
      else checkContent(v, ['template', 'content'], type, content);
      v.throwIfAny();
      const wrapperId = input.wrapper_id === undefined ? current.wrapper_id : input.wrapper_id;
      await checkWrapper(db, club.id, v, ['template', 'wrapper_id'], wrapperId, type);
      v.throwIfAny();
      const { rows } = await db.query<any>(
        `UPDATE message_templates SET name = $2, type = $3, content = $4, wrapper_id = $5, updated_at = now() WHERE id = $1
         RETURNING id, loyalty_club_id, standalone, name, type, content, wrapper_id, created_at, updated_at`,
        [current.id, input.name ?? current.name, type, JSON.stringify(cleanContent(type, content)), wrapperId],
      );
      return { template: serializeStandaloneTemplate(rows[0]) };
    },
  });

  app.delete('/v1/messages/templates/:id', {
    config: api({ permit: 'Messages:Api:Templates:Destroy', ...ctx }),
    schema: { summary: 'Destroy Template', tags: ['Templates'], params: IdParams, response: { 200: wrap('template', StandaloneTemplateSchema), ...errors } },
    handler: async (request) => {
      const current = await templateOr404(db, request.club!.id, (request.params as { id: number }).id);
      await db.query('DELETE FROM message_templates WHERE id = $1', [current.id]);
      return { template: serializeStandaloneTemplate(current) };
    },
  });

  // ----- wrappers -----
  app.get('/v1/messages/wrappers', {
    config: api({ permit: 'Messages:Api:Wrappers:Index', ...ctx }),
    schema: { summary: 'List Wrappers', tags: ['Templates'], querystring: WrappersQuery, response: { 200: wrapList('wrappers', WrapperSchema), ...errors } },
    handler: async (request) => {
      const q = request.query as ListQuery & { kind?: string };
      const params: unknown[] = [request.club!.id];
      let where = 'loyalty_club_id = $1';
      if (q.kind) where += ` AND kind = $${params.push(q.kind)}`;
      const { rows, total } = await selectPage<any>(
        db,
        'id, loyalty_club_id, name, kind, body, created_at, updated_at',
        `FROM message_wrappers WHERE ${where}`,
        `${orderBy(q, WRAPPER_SORT, { by: 'created_at' })} ${limitOffset(q)}`,
        params,
      );
      return { wrappers: rows.map(serializeWrapper), pagination_info: paginationInfo(total, q.page_no, q.per_page) };
    },
  });

  app.post('/v1/messages/wrappers', {
    config: api({ permit: 'Messages:Api:Wrappers:Create', ...ctx }),
    schema: { summary: 'Create Wrapper', tags: ['Templates'], body: WrapperBody, response: { 200: wrap('wrapper', WrapperSchema), ...errors } },
    handler: async (request) => {
      const input = (request.body as { wrapper: WrapperInput }).wrapper;
      const v = new Violations();
      if (input.name === undefined) v.add(['wrapper', 'name'], 'blank');
      if (input.kind === undefined) v.add(['wrapper', 'kind'], 'blank');
      if (input.body === undefined) v.add(['wrapper', 'body'], 'blank');
      else checkWrapperBody(v, ['wrapper', 'body'], input.body);
      v.throwIfAny();
      const { rows } = await db.query<WrapperRow>(
        `INSERT INTO message_wrappers (loyalty_club_id, name, kind, body) VALUES ($1, $2, $3, $4)
         RETURNING id, loyalty_club_id, name, kind, body, created_at, updated_at`,
        [request.club!.id, input.name, input.kind, input.body],
      );
      return { wrapper: serializeWrapper(rows[0]) };
    },
  });

  app.get('/v1/messages/wrappers/:id', {
    config: api({ permit: 'Messages:Api:Wrappers:Get', ...ctx }),
    schema: { summary: 'Show Wrapper', tags: ['Templates'], params: IdParams, response: { 200: wrap('wrapper', WrapperSchema), ...errors } },
    handler: async (request) => ({ wrapper: serializeWrapper(await wrapperOr404(db, request.club!.id, (request.params as { id: number }).id)) }),
  });

  app.put('/v1/messages/wrappers/:id', {
    config: api({ permit: 'Messages:Api:Wrappers:Update', ...ctx }),
    schema: { summary: 'Update Wrapper', tags: ['Templates'], params: IdParams, body: WrapperBody, response: { 200: wrap('wrapper', WrapperSchema), ...errors } },
    handler: async (request) => {
      const current = await wrapperOr404(db, request.club!.id, (request.params as { id: number }).id);
      const input = (request.body as { wrapper: WrapperInput }).wrapper;
      const v = new Violations();
      if (input.body !== undefined) checkWrapperBody(v, ['wrapper', 'body'], input.body);
      v.throwIfAny();
      if (input.kind !== undefined && input.kind !== current.kind) {
        // Templates using it were checked against its kind when saved.
        const { rows } = await db.query('SELECT 1 FROM message_templates WHERE wrapper_id = $1 LIMIT 1', [current.id]);
        if (rows.length) throw notAllowed('Wrapper is in use and its kind cannot change');
      }
      const { rows } = await db.query<WrapperRow>(
        `UPDATE message_wrappers SET name = $2, kind = $3, body = $4, updated_at = now() WHERE id = $1
         RETURNING id, loyalty_club_id, name, kind, body, created_at, updated_at`,
        [current.id, input.name ?? current.name, input.kind ?? current.kind, input.body ?? current.body],
      );
      return { wrapper: serializeWrapper(rows[0]) };
    },
  });

  app.delete('/v1/messages/wrappers/:id', {
    config: api({ permit: 'Messages:Api:Wrappers:Destroy', ...ctx }),
    schema: { summary: 'Destroy Wrapper', tags: ['Templates'], params: IdParams, response: { 200: wrap('wrapper', WrapperSchema), ...errors } },
    handler: async (request) => {
      const current = await wrapperOr404(db, request.club!.id, (request.params as { id: number }).id);
      const { rows } = await db.query('SELECT 1 FROM message_templates WHERE wrapper_id = $1 LIMIT 1', [current.id]);
      if (rows.length) throw notAllowed('Wrapper is in use and cannot be deleted');
      await db.query('DELETE FROM message_wrappers WHERE id = $1', [current.id]);
      return { wrapper: serializeWrapper(current) };
    },
  });
}

