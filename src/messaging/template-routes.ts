// Standalone templates (`/v1/messages/templates`, §13.14), which are also the wrappers of other
// templates (DECISIONS "Wrappers"). A channel referencing a template gets a copy, so editing or deleting a
// standalone template never changes a message.
import { Type } from '@sinclair/typebox';
import type { Queryable } from '../db/connection.ts';
import { api } from '../platform/context.ts';
import { ApiError, notAllowed, Violations } from '../platform/errors.ts';
import { limitOffset, listQuery, orderBy, paginationInfo, type ListQuery, selectPage } from '../platform/pagination.ts';
import { StringEnum } from '../platform/schema.ts';
import type { Api, Services } from '../platform/services.ts';
import { ErrorSchema, IdParams, parseId, StandaloneTemplatePayload, StandaloneTemplateSchema, TEMPLATE_TYPES, wrap, wrapList, type StandaloneTemplateInput } from './schemas.ts';
import { checkContent, checkWrapper, cleanContent, findStandaloneTemplate, insertTemplate, isUsedAsWrapper, serializeStandaloneTemplate } from './templates.ts';

const ctx = { auth: 'UserToken', context: 'LoyaltyClub' } as const;
const errors = { 403: ErrorSchema, 404: ErrorSchema, 405: ErrorSchema, 422: Type.Object({ error: Type.String(), details: Type.Any() }) };
const like = (s: string) => `%${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

const TEMPLATE_SORT = { created_at: 'created_at', updated_at: 'updated_at', name: 'name', id: 'id' };
const TemplatesQuery = listQuery(
  { defaultPerPage: 100, maxPerPage: 100, sortable: Object.keys(TEMPLATE_SORT) },
  { type: Type.Optional(Type.Array(StringEnum(TEMPLATE_TYPES), { maxItems: TEMPLATE_TYPES.length })), search: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) },
);
const TemplateBody = Type.Object({ template: StandaloneTemplatePayload }, { additionalProperties: false });

async function templateOr404(db: Queryable, clubId: number, rawId: string | number) {
  const id = parseId(rawId);
  const t = id === null ? null : await findStandaloneTemplate(db, clubId, id);
  if (!t) throw new ApiError(404, 'Template not found');
  return t;
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
      await checkWrapper(db, club.id, v, ['template', 'wrapper_id'], wrapperId, type, current.id);
      v.throwIfAny();
      // The templates wrapped in this one were checked against its type.
      if (type !== current.type && (await isUsedAsWrapper(db, current.id))) throw notAllowed('Template is used as a wrapper by another template and its type cannot change');
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
      if (await isUsedAsWrapper(db, current.id)) throw notAllowed('Template is used as a wrapper by another template and cannot be deleted');
      await db.query('DELETE FROM message_templates WHERE id = $1', [current.id]);
      return { template: serializeStandaloneTemplate(current) };
    },
  });

  // ----- wrappers of earlier releases -----
  // Wrappers became templates (migration 0651): an old wrapper id is answered with the template it
  // became, for one release (DECISIONS "Wrappers", CHANGELOG).
  app.get('/v1/messages/wrappers/:id', {
    config: api({ permit: 'Messages:Api:Templates:Get', ...ctx }),
    schema: {
      summary: 'Show Wrapper (deprecated)',
      description: 'The template an earlier wrapper id became. Use `/v1/messages/templates/{id}`; answered for one release.',
      tags: ['Templates'],
      params: IdParams,
      response: { 200: wrap('template', StandaloneTemplateSchema), ...errors },
    },
    handler: async (request) => {
      const id = parseId((request.params as { id: number }).id);
      const { rows } = id === null ? { rows: [] } : await db.query<{ template_id: number }>(
        'SELECT template_id FROM message_wrapper_ids WHERE old_id = $1 AND loyalty_club_id = $2',
        [id, request.club!.id],
      );
      if (!rows[0]) throw new ApiError(404, 'Wrapper not found');
      return { template: serializeStandaloneTemplate(await templateOr404(db, request.club!.id, String(rows[0].template_id))) };
    },
  });
}
