// SMS sender identities (members-api.md §6.1, messaging-api.md §5.6). `default` is read-only: the
// identity equal to the club's configured default SMS sender, which therefore cannot be deleted
// or changed through this API.
import { Type } from '@sinclair/typebox';
import type { Queryable } from '../db/connection.ts';
import type { LoyaltyClub } from '../platform/context.ts';
import { api } from '../platform/context.ts';
import { ApiError, notAllowed, Violations } from '../platform/errors.ts';
import { limitOffset, listQuery, orderBy, paginationInfo, type ListQuery, selectPage } from '../platform/pagination.ts';
import type { Api, Services } from '../platform/services.ts';
import { ErrorSchema, IdParams, parseId, SenderIdentityPayload, SenderIdentitySchema, wrap, wrapList, type SenderIdentityInput, type SenderType } from './schemas.ts';
import { checkSenderValue, clubSettings } from './settings.ts';
import { iso } from '../platform/schema.ts';

const BASE = '/v1/sms_sender_identities';
const ctx = { auth: 'UserToken', context: 'LoyaltyClub' } as const;
const errors = { 403: ErrorSchema, 404: ErrorSchema, 405: ErrorSchema, 422: Type.Object({ error: Type.String(), details: Type.Any() }) };
const SORT = { created_at: 'created_at', updated_at: 'updated_at', value: 'value', id: 'id' };
const Query = listQuery({ defaultPerPage: 100, maxPerPage: 100, sortable: Object.keys(SORT) });
const Body = Type.Object({ sms_sender_identity: SenderIdentityPayload }, { additionalProperties: false });

interface IdentityRow {
  id: number;
  type: SenderType;
  value: string;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = 'id, type, value, created_at, updated_at';

function isDefault(club: LoyaltyClub, row: Pick<IdentityRow, 'type' | 'value'>): boolean {
  const d = clubSettings(club).channels.sms.default_sender;
  return d !== null && d.type === row.type && d.value === row.value;
}

const serialize = (club: LoyaltyClub, r: IdentityRow) => ({
  id: r.id,
  type: r.type,
  value: r.value,
  default: isDefault(club, r),
  created_at: iso(r.created_at)!,
  updated_at: iso(r.updated_at)!,
});

async function find(db: Queryable, clubId: number, rawId: string | number): Promise<IdentityRow> {
  const id = parseId(rawId);
  const row = id === null ? undefined : (await db.query<IdentityRow>(`SELECT ${COLUMNS} FROM sms_sender_identities WHERE id = $1 AND loyalty_club_id = $2`, [id, clubId])).rows[0];
  if (!row) throw new ApiError(404, 'SMS sender identity not found');
  return row;
}

/** A concurrent insert of the same identity loses the race on the unique index: same answer as `checkUnique`. */
async function uniqueOr422<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if ((err as { code?: string }).code === '23505') new Violations().add(['sms_sender_identity', 'value'], 'taken').throwIfAny();
    throw err;
  }
}

async function checkUnique(db: Queryable, clubId: number, type: SenderType, value: string, exceptId: number | null): Promise<void> {
  const { rows } = await db.query('SELECT 1 FROM sms_sender_identities WHERE loyalty_club_id = $1 AND type = $2 AND value = $3 AND id <> $4', [clubId, type, value, exceptId ?? 0]);
  if (rows.length) new Violations().add(['sms_sender_identity', 'value'], 'taken').throwIfAny();
}

/** The club's configured default sender is always listed as an identity. */
export async function ensureDefaultIdentity(db: Queryable, club: LoyaltyClub): Promise<void> {
  const d = clubSettings(club).channels.sms.default_sender;
  if (!d) return;
  await db.query(
    'INSERT INTO sms_sender_identities (loyalty_club_id, type, value) VALUES ($1, $2, $3) ON CONFLICT (loyalty_club_id, type, value) DO NOTHING',
    [club.id, d.type, d.value],
  );
}

export function identityRoutes(app: Api, { db }: Services): void {
  app.get(BASE, {
    config: api({ permit: 'Messages:Api:SmsSenderIdentities:Index', ...ctx }),
    schema: { summary: 'List SMS Sender Identities', tags: ['Sender Identities'], querystring: Query, response: { 200: wrapList('sms_sender_identities', SenderIdentitySchema), ...errors } },
    handler: async (request) => {
      const q = request.query as ListQuery;
      const club = request.club!;
      await ensureDefaultIdentity(db, club);
      const { rows, total } = await selectPage<IdentityRow>(
        db, COLUMNS, 'FROM sms_sender_identities WHERE loyalty_club_id = $1', `${orderBy(q, SORT, { by: 'created_at' })} ${limitOffset(q)}`, [club.id],
      );
      return { sms_sender_identities: rows.map((r) => serialize(club, r)), pagination_info: paginationInfo(total, q.page_no, q.per_page) };
    },
  });

  app.post(BASE, {
    config: api({ permit: 'Messages:Api:SmsSenderIdentities:Create', ...ctx }),
    schema: { summary: 'Create SMS Sender Identity', tags: ['Sender Identities'], body: Body, response: { 200: wrap('sms_sender_identity', SenderIdentitySchema), ...errors } },
    handler: async (request) => {
      const club = request.club!;
      const input = (request.body as { sms_sender_identity: SenderIdentityInput }).sms_sender_identity;
      const v = new Violations();
      if (input.type === undefined) v.add(['sms_sender_identity', 'type'], 'blank');
      if (input.value === undefined) v.add(['sms_sender_identity', 'value'], 'blank');
      if (input.type !== undefined && input.value !== undefined) checkSenderValue(v, ['sms_sender_identity', 'value'], input.type, input.value);
      v.throwIfAny();
      await checkUnique(db, club.id, input.type!, input.value!, null);
      const { rows } = await uniqueOr422(() =>
        db.query<IdentityRow>(`INSERT INTO sms_sender_identities (loyalty_club_id, type, value) VALUES ($1, $2, $3) RETURNING ${COLUMNS}`, [club.id, input.type, input.value]),
      );
      return { sms_sender_identity: serialize(club, rows[0]) };
    },
  });

  app.get(`${BASE}/:id`, {
    config: api({ permit: 'Messages:Api:SmsSenderIdentities:Get', ...ctx }),
    schema: { summary: 'Show SMS Sender Identity', tags: ['Sender Identities'], params: IdParams, response: { 200: wrap('sms_sender_identity', SenderIdentitySchema), ...errors } },
    handler: async (request) => ({ sms_sender_identity: serialize(request.club!, await find(db, request.club!.id, (request.params as { id: number }).id)) }),
  });

  app.put(`${BASE}/:id`, {
    config: api({ permit: 'Messages:Api:SmsSenderIdentities:Update', ...ctx }),
    schema: { summary: 'Update SMS Sender Identity', tags: ['Sender Identities'], params: IdParams, body: Body, response: { 200: wrap('sms_sender_identity', SenderIdentitySchema), ...errors } },
    handler: async (request) => {
      const club = request.club!;
      const current = await find(db, club.id, (request.params as { id: number }).id);
      const input = (request.body as { sms_sender_identity: SenderIdentityInput }).sms_sender_identity;
      const type = input.type ?? current.type;
      const value = input.value ?? current.value;
      const v = new Violations();
      checkSenderValue(v, ['sms_sender_identity', 'value'], type, value);
      v.throwIfAny();
      if (isDefault(club, current) && (type !== current.type || value !== current.value)) throw notAllowed('The default SMS sender identity cannot be changed');
      await checkUnique(db, club.id, type, value, current.id);
      const { rows } = await uniqueOr422(() =>
        db.query<IdentityRow>(`UPDATE sms_sender_identities SET type = $2, value = $3, updated_at = now() WHERE id = $1 RETURNING ${COLUMNS}`, [current.id, type, value]),
      );
      return { sms_sender_identity: serialize(club, rows[0]) };
    },
  });

  app.delete(`${BASE}/:id`, {
    config: api({ permit: 'Messages:Api:SmsSenderIdentities:Destroy', ...ctx }),
    schema: { summary: 'Destroy SMS Sender Identity', tags: ['Sender Identities'], params: IdParams, response: { 200: wrap('sms_sender_identity', SenderIdentitySchema), ...errors } },
    handler: async (request) => {
      const club = request.club!;
      const current = await find(db, club.id, (request.params as { id: number }).id);
      if (isDefault(club, current)) throw notAllowed('The default SMS sender identity cannot be deleted');
      await db.query('DELETE FROM sms_sender_identities WHERE id = $1', [current.id]);
      return { sms_sender_identity: serialize(club, current) };
    },
  });
}
