// Campaigns (§13.13): group messages of the `campaigns` service. Served under
// `/v1/messages_campaigns` because `/v1/messages/campaigns` is already the documented path of the
// `campaigns` service's messages (docs/decisions.md "Messaging").
import { Type } from '@sinclair/typebox';
import type { Queryable } from '../db/connection.ts';
import { api } from '../platform/context.ts';
import { ApiError, notAllowed, Violations } from '../platform/errors.ts';
import { limitOffset, listQuery, orderBy, paginationInfo, type ListQuery, selectPage } from '../platform/pagination.ts';
import type { Api, Services } from '../platform/services.ts';
import { CampaignPayload, CampaignSchema, ErrorSchema, IdParams, parseId, wrap, wrapList, type CampaignInput } from './schemas.ts';
import { iso } from '../platform/schema.ts';

const BASE = '/v1/messages_campaigns';
const ctx = { auth: 'UserToken', context: 'LoyaltyClub' } as const;
const errors = { 403: ErrorSchema, 404: ErrorSchema, 405: ErrorSchema, 422: Type.Object({ error: Type.String(), details: Type.Any() }) };
const SORT = { created_at: 'created_at', updated_at: 'updated_at', name: 'name', id: 'id', starts_at: 'starts_at' };
const Query = listQuery(
  { defaultPerPage: 100, maxPerPage: 100, sortable: Object.keys(SORT) },
  { archived: Type.Optional(Type.Boolean()), search: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) },
);
const Body = Type.Object({ campaign: CampaignPayload }, { additionalProperties: false });

interface CampaignRow {
  id: number;
  name: string;
  description: string | null;
  starts_at: Date | null;
  ends_at: Date | null;
  archived_at: Date | null;
  messages_count: number;
  created_at: Date;
  updated_at: Date;
}

const SELECT = `SELECT c.id, c.name, c.description, c.starts_at, c.ends_at, c.archived_at, c.created_at, c.updated_at,
  (SELECT count(*)::int FROM messages m WHERE m.campaign_id = c.id) AS messages_count FROM message_campaigns c`;

const serialize = (c: CampaignRow) => ({
  id: c.id,
  name: c.name,
  description: c.description,
  starts_at: iso(c.starts_at),
  ends_at: iso(c.ends_at),
  archived: c.archived_at !== null,
  archived_at: iso(c.archived_at),
  messages_count: c.messages_count,
  created_at: iso(c.created_at)!,
  updated_at: iso(c.updated_at)!,
});

async function find(db: Queryable, clubId: number, rawId: string | number): Promise<CampaignRow> {
  const id = parseId(rawId);
  const row = id === null ? undefined : (await db.query<CampaignRow>(`${SELECT} WHERE c.id = $1 AND c.loyalty_club_id = $2`, [id, clubId])).rows[0];
  if (!row) throw new ApiError(404, 'Campaign not found');
  return row;
}

function checkPeriod(input: CampaignInput, current?: CampaignRow): void {
  const starts = input.starts_at === undefined ? current?.starts_at : input.starts_at;
  const ends = input.ends_at === undefined ? current?.ends_at : input.ends_at;
  if (starts && ends && new Date(ends) < new Date(starts)) new Violations().add(['campaign', 'ends_at'], 'must_be_after_starts_at').throwIfAny();
}

export function campaignRoutes(app: Api, { db }: Services): void {
  app.get(BASE, {
    config: api({ permit: 'Messages:Api:Campaigns:Index', ...ctx }),
    schema: { summary: 'List Campaigns', tags: ['Campaigns'], querystring: Query, response: { 200: wrapList('campaigns', CampaignSchema), ...errors } },
    handler: async (request) => {
      const q = request.query as ListQuery & { archived?: boolean; search?: string };
      const params: unknown[] = [request.club!.id];
      const where = ['c.loyalty_club_id = $1', q.archived ? 'c.archived_at IS NOT NULL' : 'c.archived_at IS NULL'];
      if (q.search) where.push(`c.name ILIKE $${params.push(`%${q.search.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`)}`);
      const { rows, total } = await selectPage<CampaignRow>(
        db, '*', `FROM (${SELECT} WHERE ${where.join(' AND ')}) c`, `${orderBy(q, SORT, { by: 'created_at' })} ${limitOffset(q)}`, params,
      );
      return { campaigns: rows.map(serialize), pagination_info: paginationInfo(total, q.page_no, q.per_page) };
    },
  });

  app.post(BASE, {
    config: api({ permit: 'Messages:Api:Campaigns:Create', ...ctx }),
    schema: { summary: 'Create Campaign', tags: ['Campaigns'], body: Body, response: { 200: wrap('campaign', CampaignSchema), ...errors } },
    handler: async (request) => {
      const input = (request.body as { campaign: CampaignInput }).campaign;
      if (input.name === undefined) new Violations().add(['campaign', 'name'], 'blank').throwIfAny();
      checkPeriod(input);
      const { rows } = await db.query<{ id: number }>(
        'INSERT INTO message_campaigns (loyalty_club_id, name, description, starts_at, ends_at) VALUES ($1, $2, $3, $4, $5) RETURNING id',
        [request.club!.id, input.name, input.description ?? null, input.starts_at ?? null, input.ends_at ?? null],
      );
      return { campaign: serialize(await find(db, request.club!.id, String(rows[0].id))) };
    },
  });

  app.get(`${BASE}/:id`, {
    config: api({ permit: 'Messages:Api:Campaigns:Get', ...ctx }),
    schema: { summary: 'Show Campaign', tags: ['Campaigns'], params: IdParams, response: { 200: wrap('campaign', CampaignSchema), ...errors } },
    handler: async (request) => ({ campaign: serialize(await find(db, request.club!.id, (request.params as { id: number }).id)) }),
  });

  app.put(`${BASE}/:id`, {
    config: api({ permit: 'Messages:Api:Campaigns:Update', ...ctx }),
    schema: { summary: 'Update Campaign', tags: ['Campaigns'], params: IdParams, body: Body, response: { 200: wrap('campaign', CampaignSchema), ...errors } },
    handler: async (request) => {
      const club = request.club!;
      const current = await find(db, club.id, (request.params as { id: number }).id);
      const input = (request.body as { campaign: CampaignInput }).campaign;
      checkPeriod(input, current);
      await db.query(
        `UPDATE message_campaigns SET name = $2, description = $3, starts_at = $4, ends_at = $5, updated_at = now() WHERE id = $1`,
        [
          current.id,
          input.name ?? current.name,
          input.description === undefined ? current.description : input.description,
          input.starts_at === undefined ? current.starts_at : input.starts_at,
          input.ends_at === undefined ? current.ends_at : input.ends_at,
        ],
      );
      return { campaign: serialize(await find(db, club.id, String(current.id))) };
    },
  });

  app.put(`${BASE}/:id/archive`, {
    config: api({ permit: 'Messages:Api:Campaigns:Update', ...ctx }),
    schema: { summary: 'Archive Campaign', tags: ['Campaigns'], params: IdParams, response: { 200: wrap('campaign', CampaignSchema), ...errors } },
    handler: async (request) => {
      const current = await find(db, request.club!.id, (request.params as { id: number }).id);
      if (current.archived_at) throw notAllowed('Campaign is archived already');
      await db.query('UPDATE message_campaigns SET archived_at = now(), updated_at = now() WHERE id = $1', [current.id]);
      return { campaign: serialize(await find(db, request.club!.id, String(current.id))) };
    },
  });

  app.put(`${BASE}/:id/restore`, {
    config: api({ permit: 'Messages:Api:Campaigns:Update', ...ctx }),
    schema: { summary: 'Restore Campaign', tags: ['Campaigns'], params: IdParams, response: { 200: wrap('campaign', CampaignSchema), ...errors } },
    handler: async (request) => {
      const current = await find(db, request.club!.id, (request.params as { id: number }).id);
      if (!current.archived_at) throw notAllowed('Campaign is not archived');
      await db.query('UPDATE message_campaigns SET archived_at = NULL, updated_at = now() WHERE id = $1', [current.id]);
      return { campaign: serialize(await find(db, request.club!.id, String(current.id))) };
    },
  });

  app.put(`${BASE}/:id/duplicate`, {
    config: api({ permit: 'Messages:Api:Campaigns:Duplicate', ...ctx }),
    schema: { summary: 'Duplicate Campaign', tags: ['Campaigns'], params: IdParams, response: { 200: wrap('campaign', CampaignSchema), ...errors } },
    handler: async (request) => {
      const current = await find(db, request.club!.id, (request.params as { id: number }).id);
      // The copy is a fresh, active campaign with the same attributes; messages stay with the original.
      const { rows } = await db.query<{ id: number }>(
        `INSERT INTO message_campaigns (loyalty_club_id, name, description, starts_at, ends_at)
         SELECT loyalty_club_id, left(name || ' (copy)', 255), description, starts_at, ends_at FROM message_campaigns WHERE id = $1 RETURNING id`,
        [current.id],
      );
      return { campaign: serialize(await find(db, request.club!.id, String(rows[0].id))) };
    },
  });

  app.delete(`${BASE}/:id`, {
    config: api({ permit: 'Messages:Api:Campaigns:Destroy', ...ctx }),
    schema: { summary: 'Destroy Campaign', tags: ['Campaigns'], params: IdParams, response: { 200: wrap('campaign', CampaignSchema), ...errors } },
    handler: async (request) => {
      const current = await find(db, request.club!.id, (request.params as { id: number }).id);
      if (current.messages_count > 0) throw notAllowed('Campaign has messages and cannot be destroyed');
      try {
        await db.query('DELETE FROM message_campaigns WHERE id = $1', [current.id]);
      } catch (err) {
        // a message was attached meanwhile: the foreign key refuses, as the check above would have
        if ((err as { code?: string }).code === '23503') throw notAllowed('Campaign has messages and cannot be destroyed');
        throw err;
      }
      return { campaign: serialize(current) };
    },
  });
}
