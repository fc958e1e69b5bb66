// Members imports (members-api §5.3): bulks of ≤ 1000 members stored by the API (or the CLI) and
// processed by background workers.
//
// A bulk is claimed with FOR UPDATE SKIP LOCKED and a lease; it is processed in ONE transaction
// that also marks it finished, so a crash (or an injected failure) leaves no member behind and
// the retry starts from a clean slate: no member is ever created twice. Per-member problems are
// recorded in `members_errors` and never stop the other members of the bulk.
import { randomUUID } from 'node:crypto';
import type { Database, Queryable } from '../db/connection.ts';
import { notFound, Violations, type ErrorsTree } from '../platform/errors.ts';
import { loadMemberSchema, type MemberSchema } from './schema.ts';
import { normaliseEmail, normaliseMsisdn, resolveChannelStatuses, resolveMemberState, type ConsentState } from './member-input.ts';
import { hashPassword, MEMBER_SELECT, toMember } from './members.ts';
import { enqueueMemberEvents } from './webhooks.ts';

export const MAX_BULK_MEMBERS = 1000;
/** The 5th failed run of a bulk makes it `failed`. */
export const MAX_BULK_RUNS = 5;
const LEASE_SECONDS = 300;
const RETRY_BASE_SECONDS = 10;
const PURGE_AFTER_HOURS = 24;

export type BulkStatus = 'waiting' | 'working' | 'finished' | 'failed' | 'waiting_for_retry';
export type ImportOperation = 'create' | 'update';
export type IdentifierType = 'id' | 'email' | 'msisdn';

export interface ImportRequest {
  import_id?: string;
  request_number?: number;
  members: unknown[];
  operation?: ImportOperation;
  member_identifier_type?: IdentifierType;
  multi_values_update_mode?: 'replace' | 'append' | 'update';
}

export interface ImportBulk {
  id: number;
  import_id: string;
  request_number: number | null;
  operation: ImportOperation;
  member_identifier_type: IdentifierType;
  status: BulkStatus;
  members_in_payload_number: number;
  members_created_number: number;
  members_updated_number: number;
  members_with_validation_errors_number: number;
  retries: number;
  members_errors: Record<string, ErrorsTree>;
  created_at: string;
  finished_at: string | null;
}

const BULK_COLUMNS = `id, import_id, request_number, operation, member_identifier_type, status, members_in_payload_number,
  members_created_number, members_updated_number, members_with_validation_errors_number, retries, members_errors, created_at, finished_at`;

const toBulk = (r: Record<string, any>): ImportBulk => ({
  id: r.id,
  import_id: r.import_id,
  request_number: r.request_number,
  operation: r.operation,
  member_identifier_type: r.member_identifier_type,
  status: r.status,
  members_in_payload_number: r.members_in_payload_number,
  members_created_number: r.members_created_number,
  members_updated_number: r.members_updated_number,
  members_with_validation_errors_number: r.members_with_validation_errors_number,
  retries: r.retries,
  members_errors: r.members_errors,
  created_at: new Date(r.created_at).toISOString(),
  finished_at: r.finished_at ? new Date(r.finished_at).toISOString() : null,
});

/** Stores one bulk (status `waiting`). Request-level problems → 422; member-level ones come later. */
export async function submitImportBulk(db: Queryable, clubId: number, req: ImportRequest, source: string): Promise<ImportBulk> {
  const v = new Violations();
  if (!Array.isArray(req.members) || req.members.length === 0) v.add(['members'], 'blank');
  else if (req.members.length > MAX_BULK_MEMBERS) v.add(['members'], 'too_long', { max_length: MAX_BULK_MEMBERS });
  if (req.request_number !== undefined && req.import_id === undefined) v.add(['request_number'], 'attribute_cannot_be_present_without', { without: 'import_id' });
  const importId = req.import_id ?? randomUUID();
  if (req.request_number !== undefined && v.empty) {
    const { rows } = await db.query('SELECT 1 FROM members_import_bulks WHERE loyalty_club_id = $1 AND import_id = $2 AND request_number = $3', [clubId, importId, req.request_number]);
    if (rows.length) v.add(['request_number'], 'taken');
  }
  v.throwIfAny();
  const mode = req.multi_values_update_mode === 'append' ? 'append' : 'replace';
  const { rows } = await db.query(
    `INSERT INTO members_import_bulks (loyalty_club_id, import_id, request_number, operation, member_identifier_type,
       multi_values_update_mode, source, members, members_in_payload_number)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9) RETURNING ${BULK_COLUMNS}`,
    [clubId, importId, req.request_number ?? null, req.operation ?? 'create', req.member_identifier_type ?? 'id', mode, source, JSON.stringify(req.members), req.members.length],
  );
  return toBulk(rows[0]);
}

export async function getImportBulk(db: Queryable, clubId: number, importId: string, bulkId: number): Promise<ImportBulk> {
  const { rows } = await db.query(`SELECT ${BULK_COLUMNS} FROM members_import_bulks WHERE loyalty_club_id = $1 AND import_id = $2 AND id = $3`, [clubId, importId, bulkId]);
  if (!rows[0]) throw notFound('Import bulk');
  return toBulk(rows[0]);
}

export interface ImportOverview {
  import_id: string;
  status: BulkStatus;
  bulks_number: number;
  members_in_payload_number: number;
  members_created_number: number;
  members_updated_number: number;
  members_with_validation_errors_number: number;
  created_at: string;
  bulks: Array<Omit<ImportBulk, 'members_errors'>>;
}

/** The whole import: totals and every bulk without its error details. */
export async function getImport(db: Queryable, clubId: number, importId: string): Promise<ImportOverview> {
  const { rows } = await db.query(`SELECT ${BULK_COLUMNS} FROM members_import_bulks WHERE loyalty_club_id = $1 AND import_id = $2 ORDER BY id`, [clubId, importId]);
  if (!rows.length) throw notFound('Import');
  const bulks = rows.map(toBulk);
  const sum = (k: keyof ImportBulk) => bulks.reduce((n, b) => n + (b[k] as number), 0);
  const statuses = new Set(bulks.map((b) => b.status));
  const done = [...statuses].every((s) => s === 'finished' || s === 'failed');
  const status: BulkStatus = done
    ? statuses.has('failed') ? 'failed' : 'finished'
    : statuses.has('working') || statuses.has('finished') || statuses.has('failed') || statuses.has('waiting_for_retry') ? 'working' : 'waiting';
  return {
    import_id: importId,
    status,
    bulks_number: bulks.length,
    members_in_payload_number: sum('members_in_payload_number'),
    members_created_number: sum('members_created_number'),
    members_updated_number: sum('members_updated_number'),
    members_with_validation_errors_number: sum('members_with_validation_errors_number'),
    created_at: bulks[0].created_at,
    bulks: bulks.map(({ members_errors: _e, ...b }) => b),
  };
}

// ---- claiming ----

export interface ClaimedBulk {
  id: number;
  loyalty_club_id: number;
  import_id: string;
  operation: ImportOperation;
  member_identifier_type: IdentifierType;
  multi_values_update_mode: 'replace' | 'append';
  source: string;
  retries: number;
  lease_token: string;
}

/**
 * Bulks whose worker vanished (lease expired while `working`) count as a failed run: back to
 * `waiting_for_retry`, or `failed` after the 5th.
 */
export async function reapExpiredBulks(db: Queryable): Promise<number> {
  const r = await db.query(
    `UPDATE members_import_bulks b
        SET status = CASE WHEN b.retries + 1 >= $1 THEN 'failed' ELSE 'waiting_for_retry' END,
            retries = b.retries + 1, retry_at = now(), lease_token = NULL, locked_until = NULL,
            last_error = 'worker stopped while processing (lease expired)', updated_at = now(),
            finished_at = CASE WHEN b.retries + 1 >= $1 THEN now() ELSE NULL END
      WHERE b.id IN (SELECT id FROM members_import_bulks WHERE status = 'working' AND locked_until < now() FOR UPDATE SKIP LOCKED)`,
    [MAX_BULK_RUNS],
  );
  return r.rowCount;
}

/** Takes the oldest due bulk (or the given one when due) for this worker. */
export async function claimBulk(db: Queryable, opts: { bulkId?: number; clubId?: number; leaseSeconds?: number } = {}): Promise<ClaimedBulk | null> {
  const { rows } = await db.query<ClaimedBulk>(
    `UPDATE members_import_bulks b SET status = 'working', lease_token = $1, locked_until = now() + make_interval(secs => $2), updated_at = now()
      WHERE b.id = (SELECT id FROM members_import_bulks
                     WHERE (status = 'waiting' OR (status = 'waiting_for_retry' AND retry_at <= now()))
                       AND ($3::bigint IS NULL OR id = $3) AND ($4::bigint IS NULL OR loyalty_club_id = $4)
                     ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
      RETURNING b.id, b.loyalty_club_id, b.import_id, b.operation, b.member_identifier_type, b.multi_values_update_mode, b.source, b.retries, b.lease_token`,
    [randomUUID(), opts.leaseSeconds ?? LEASE_SECONDS, opts.bulkId ?? null, opts.clubId ?? null],
  );
  return rows[0] ?? null;
}

// ---- processing ----

const ITEM_KEYS = new Set(['id', 'properties', 'consents', 'password', 'sms_enabled', 'email_enabled', 'push_enabled', 'optin_channel', 'optin_subchannel', 'favorite_stores', 'subunit_ids', 'person_id']);

interface PreparedCreate {
  pos: number;
  properties: Record<string, unknown>;
  consents: Record<string, ConsentState>;
  sms_status: string;
  email_status: string;
  push_status: string;
  optin_channel: string;
  optin_subchannel: string;
  password_hash: string | null;
  person_id: string | null;
  favorite_stores: number[];
  subunit_ids: number[];
}

interface PreparedUpdate {
  id: number;
  properties: Record<string, unknown>;
  consents: Record<string, ConsentState>;
  sms_status: string;
  email_status: string;
  push_status: string;
  password_hash: string | null;
  person_id: string | null;
  set_person_id: boolean;
  favorite_stores: number[] | null;
  subunit_ids: number[] | null;
}

const isIdArray = (x: unknown) => Array.isArray(x) && x.length <= 1000 && x.every((i) => Number.isSafeInteger(i) && i > 0);

/** Shape checks of an import item beyond properties / consents. */
function checkItem(item: Record<string, unknown>, operation: ImportOperation, identifier: IdentifierType, v: Violations): void {
  for (const key of Object.keys(item)) {
    if (!ITEM_KEYS.has(key) || (key === 'id' && !(operation === 'update' && identifier === 'id'))) v.add([key], 'not_permitted');
  }
  if (operation === 'create' && (item.properties === undefined || item.properties === null)) v.add(['properties'], 'blank');
  if (item.properties !== undefined && (typeof item.properties !== 'object' || item.properties === null || Array.isArray(item.properties))) v.add(['properties'], 'invalid', { format: 'object' });
  if (item.consents !== undefined && item.consents !== null && (typeof item.consents !== 'object' || Array.isArray(item.consents))) v.add(['consents'], 'invalid', { format: 'object' });
  for (const key of ['sms_enabled', 'email_enabled', 'push_enabled']) if (item[key] !== undefined && typeof item[key] !== 'boolean') v.add([key], 'invalid', { format: 'boolean' });
  for (const key of ['optin_channel', 'optin_subchannel']) {
    if (item[key] !== undefined && (typeof item[key] !== 'string' || (item[key] as string).length > 100)) v.add([key], 'invalid', { format: 'string' });
  }
  if (item.password !== undefined && item.password !== null) {
    if (typeof item.password !== 'string') v.add(['password'], 'invalid', { format: 'string' });
    else if (item.password.length < 6) v.add(['password'], 'too_short', { min_length: 6 });
    else if (item.password.length > 128) v.add(['password'], 'too_long', { max_length: 128 });
  }
  for (const key of ['favorite_stores', 'subunit_ids']) if (item[key] !== undefined && !isIdArray(item[key])) v.add([key], 'invalid', { format: 'array' });
  if (item.person_id !== undefined && item.person_id !== null && typeof item.person_id !== 'string' && !Number.isSafeInteger(item.person_id)) v.add(['person_id'], 'invalid', { format: 'string' });
}

/** The key of a member in `members_errors`: its identifier as submitted, else its position. */
function errorKey(item: unknown, identifier: IdentifierType, pos: number): string {
  const obj = item && typeof item === 'object' ? (item as Record<string, any>) : {};
  const props = obj.properties && typeof obj.properties === 'object' ? obj.properties : {};
  const candidates = identifier === 'id' ? [obj.id, props.email, props.msisdn] : [props[identifier], props.email, props.msisdn];
  const found = candidates.find((c) => (typeof c === 'string' && c !== '') || typeof c === 'number');
  return found === undefined ? `#${pos}` : String(found);
}

export interface ProcessOptions {
  /** Members of the bulk already in memory (the CLI), instead of reading the stored payload. */
  members?: unknown[];
  /** Test hook: runs inside the bulk's transaction after the members were written. */
  afterWrite?: (written: number) => void | Promise<void>;
}

export interface BulkOutcome {
  status: BulkStatus;
  created: number;
  updated: number;
  errors: number;
}

/** Processes a claimed bulk to its end: finished, or (on a crash) waiting_for_retry / failed. */
export async function processBulk(db: Database, bulk: ClaimedBulk, opts: ProcessOptions = {}): Promise<BulkOutcome> {
  try {
    return await db.transaction(async (tx) => {
      // Fencing: only the holder of the current lease may write; the row lock keeps others out.
      const { rows } = await tx.query<{ status: string; lease_token: string | null; members: unknown[] | null }>(
        `SELECT status, lease_token, ${opts.members ? 'NULL::jsonb AS members' : 'members'} FROM members_import_bulks WHERE id = $1 FOR UPDATE`,
        [bulk.id],
      );
      const row = rows[0];
      if (!row || row.status !== 'working' || row.lease_token !== bulk.lease_token) throw new LeaseLost();
      const items = opts.members ?? row.members;
      if (!items) throw new Error('import payload was purged before processing');
      const schema = await loadMemberSchema(tx, bulk.loyalty_club_id);
      const result = bulk.operation === 'create' ? await importCreate(tx, schema, bulk, items, opts) : await importUpdate(tx, schema, bulk, items, opts);
      await tx.query(
        `UPDATE members_import_bulks SET status = 'finished', members_created_number = $2, members_updated_number = $3,
                members_with_validation_errors_number = $4, members_errors = $5, lease_token = NULL, locked_until = NULL,
                last_error = NULL, finished_at = now(), updated_at = now()
          WHERE id = $1`,
        [bulk.id, result.created, result.updated, result.errorMembers, JSON.stringify(result.errors)],
      );
      return { status: 'finished' as const, created: result.created, updated: result.updated, errors: result.errorMembers };
    });
  } catch (err) {
    if (err instanceof LeaseLost) return { status: 'working', created: 0, updated: 0, errors: 0 };
    const { rows } = await db.query<{ status: BulkStatus }>(
      `UPDATE members_import_bulks
          SET status = CASE WHEN retries + 1 >= $3 THEN 'failed' ELSE 'waiting_for_retry' END,
              retries = retries + 1, retry_at = now() + make_interval(secs => $4 * power(2, retries)),
              last_error = $5, lease_token = NULL, locked_until = NULL, updated_at = now(),
              finished_at = CASE WHEN retries + 1 >= $3 THEN now() ELSE NULL END
        WHERE id = $1 AND lease_token = $2 RETURNING status`,
      [bulk.id, bulk.lease_token, MAX_BULK_RUNS, RETRY_BASE_SECONDS, String((err as Error)?.message ?? err).slice(0, 500)],
    );
    return { status: rows[0]?.status ?? 'waiting_for_retry', created: 0, updated: 0, errors: 0 };
  }
}

class LeaseLost extends Error {}

interface StepResult {
  created: number;
  updated: number;
  errorMembers: number;
  errors: Record<string, ErrorsTree>;
}

/** Per-member errors of a bulk, keyed as `members_errors` is. */
class ErrorBook {
  private readonly byKey = new Map<string, Violations>();
  readonly failed = new Set<number>();
  constructor(
    private readonly items: unknown[],
    private readonly identifier: IdentifierType,
  ) {}
  add(pos: number, v: Violations): void {
    this.failed.add(pos);
    const key = errorKey(this.items[pos], this.identifier, pos);
    const existing = this.byKey.get(key);
    if (existing) existing.merge([], v);
    else this.byKey.set(key, v);
  }
  one(pos: number, path: Array<string | number>, error: string, options?: Record<string, unknown>): void {
    this.add(pos, new Violations().add(path, error, options));
  }
  get errors(): Record<string, ErrorsTree> {
    return Object.fromEntries([...this.byKey].map(([k, v]) => [k, v.tree]));
  }
}

async function hashAll(passwords: Array<string | null>): Promise<Array<string | null>> {
  const out: Array<string | null> = new Array(passwords.length).fill(null);
  // A few at a time: scrypt is deliberately slow and memory-hungry.
  for (let i = 0; i < passwords.length; i += 8) {
    await Promise.all(passwords.slice(i, i + 8).map(async (p, j) => {
      if (p) out[i + j] = await hashPassword(p);
    }));
  }
  return out;
}

async function importCreate(tx: Queryable, schema: MemberSchema, bulk: ClaimedBulk, items: unknown[], opts: ProcessOptions): Promise<StepResult> {
  const book = new ErrorBook(items, bulk.member_identifier_type);
  const now = new Date().toISOString();
  const prepared: PreparedCreate[] = [];
  const seenEmail = new Map<string, number>();
  const seenMsisdn = new Map<string, number>();
  const passwords: Array<string | null> = [];
  items.forEach((raw, pos) => {
    const v = new Violations();
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return book.one(pos, [], 'invalid', { format: 'object' });
    const item = raw as Record<string, any>;
    checkItem(item, 'create', bulk.member_identifier_type, v);
    if (!v.empty) return book.add(pos, v);
    const state = resolveMemberState(schema, item, { now }, v);
    if (!v.empty) return book.add(pos, v);
    const email = state.properties.email as string | undefined;
    const msisdn = state.properties.msisdn as string | undefined;
    if (email !== undefined && seenEmail.has(email)) v.add(['properties', 'email'], 'duplicated_in_import');
    if (msisdn !== undefined && seenMsisdn.has(msisdn)) v.add(['properties', 'msisdn'], 'duplicated_in_import');
    if (!v.empty) return book.add(pos, v);
    if (email !== undefined) seenEmail.set(email, pos);
    if (msisdn !== undefined) seenMsisdn.set(msisdn, pos);
    const statuses = resolveChannelStatuses(null, item, state.properties);
    passwords.push(item.password ?? null);
    prepared.push({
      pos,
      properties: state.properties,
      consents: state.consents,
      ...statuses,
      optin_channel: item.optin_channel ?? 'import',
      optin_subchannel: item.optin_subchannel ?? bulk.import_id,
      password_hash: null,
      person_id: item.person_id === undefined || item.person_id === null ? null : String(item.person_id),
      favorite_stores: [...new Set<number>(item.favorite_stores ?? [])],
      subunit_ids: [...new Set<number>(item.subunit_ids ?? [])],
    });
  });
  if (passwords.some(Boolean)) {
    const hashes = await hashAll(passwords);
    prepared.forEach((p, i) => (p.password_hash = hashes[i]));
  }
  let created: Array<{ id: number; email: string | null; msisdn: string | null }> = [];
  if (prepared.length) {
    // One statement for the whole bulk; members whose email / msisdn exists already are skipped
    // by the unique indexes and reported below.
    const r = await tx.query<{ id: number; email: string | null; msisdn: string | null }>(
      `INSERT INTO members (loyalty_club_id, properties, consents, sms_status, email_status, push_status, optin_channel,
                            optin_subchannel, password_hash, person_id, favorite_stores, subunit_ids)
       SELECT $1, r.properties, r.consents, r.sms_status, r.email_status, r.push_status, r.optin_channel,
              r.optin_subchannel, r.password_hash, r.person_id, r.favorite_stores, r.subunit_ids
         FROM jsonb_to_recordset($2::jsonb) AS r(pos int, properties jsonb, consents jsonb, sms_status text, email_status text,
              push_status text, optin_channel text, optin_subchannel text, password_hash text, person_id text,
              favorite_stores bigint[], subunit_ids bigint[])
        ORDER BY r.pos
       ON CONFLICT DO NOTHING
       RETURNING id, email, msisdn`,
      [bulk.loyalty_club_id, JSON.stringify(prepared)],
    );
    created = r.rows;
  }
  if (created.length < prepared.length) {
    const byEmail = new Set(created.map((c) => c.email).filter(Boolean));
    const byMsisdn = new Set(created.map((c) => c.msisdn).filter(Boolean));
    const skipped = prepared.filter((p) => {
      if (p.properties.email !== undefined) return !byEmail.has(p.properties.email as string);
      if (p.properties.msisdn !== undefined) return !byMsisdn.has(p.properties.msisdn as string);
      return false; // without identifiers nothing can conflict
    });
    const createdIds = created.map((c) => c.id);
    const { rows: taken } = await tx.query<{ email: string | null; msisdn: string | null }>(
      `SELECT email, msisdn FROM members WHERE loyalty_club_id = $1 AND NOT (id = ANY ($4::bigint[])) AND (email = ANY ($2::text[]) OR msisdn = ANY ($3::text[]))`,
      [bulk.loyalty_club_id, skipped.map((p) => p.properties.email ?? null), skipped.map((p) => p.properties.msisdn ?? null), createdIds],
    );
    const takenEmail = new Set(taken.map((t) => t.email));
    const takenMsisdn = new Set(taken.map((t) => t.msisdn));
    for (const p of skipped) {
      const v = new Violations();
      if (p.properties.email !== undefined && takenEmail.has(p.properties.email as string)) v.add(['properties', 'email'], 'taken');
      if (p.properties.msisdn !== undefined && takenMsisdn.has(p.properties.msisdn as string)) v.add(['properties', 'msisdn'], 'taken');
      if (v.empty) v.add([], 'taken');
      book.add(p.pos, v);
    }
  }
  await opts.afterWrite?.(created.length);
  await enqueueForIds(tx, bulk, 'create', created.map((c) => c.id));
  return { created: created.length, updated: 0, errorMembers: book.failed.size, errors: book.errors };
}

async function importUpdate(tx: Queryable, schema: MemberSchema, bulk: ClaimedBulk, items: unknown[], opts: ProcessOptions): Promise<StepResult> {
  const book = new ErrorBook(items, bulk.member_identifier_type);
  const now = new Date().toISOString();
  const kind = bulk.member_identifier_type;
  // 1. Find each item's target.
  const keys: Array<string | number | null> = items.map((raw, pos) => {
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
      book.one(pos, [], 'invalid', { format: 'object' });
      return null;
    }
    const item = raw as Record<string, any>;
    const v = new Violations();
    checkItem(item, 'update', kind, v);
    if (!v.empty) {
      book.add(pos, v);
      return null;
    }
    if (kind === 'id') {
      if (item.id === undefined || item.id === null) return book.one(pos, ['id'], 'blank'), null;
      if (!Number.isSafeInteger(item.id) || item.id < 1) return book.one(pos, ['id'], 'invalid', { format: 'integer' }), null;
      return item.id as number;
    }
    const raw2 = item.properties?.[kind];
    if (raw2 === undefined || raw2 === null || raw2 === '') return book.one(pos, ['properties', kind], 'blank'), null;
    const norm = typeof raw2 === 'string' ? (kind === 'email' ? normaliseEmail(raw2) : normaliseMsisdn(raw2)) : null;
    if (norm === null) return book.one(pos, ['properties', kind], kind === 'email' ? 'invalid_format' : 'invalid_msisdn', kind === 'email' ? { format: 'email' } : undefined), null;
    return norm;
  });
  const seen = new Set<string | number>();
  keys.forEach((k, pos) => {
    if (k === null) return;
    if (seen.has(k)) {
      book.one(pos, kind === 'id' ? ['id'] : ['properties', kind], 'duplicated_in_import');
      keys[pos] = null;
    } else seen.add(k);
  });
  const lookup = keys.filter((k) => k !== null);
  const column = kind === 'id' ? 'id' : kind;
  const { rows: targets } = lookup.length
    ? await tx.query<Record<string, any>>(
        `SELECT id, properties, consents, sms_status, email_status, push_status, email, msisdn FROM members
          WHERE loyalty_club_id = $1 AND ${column} = ANY ($2::${kind === 'id' ? 'bigint' : 'text'}[]) FOR UPDATE`,
        [bulk.loyalty_club_id, lookup],
      )
    : { rows: [] };
  const byKey = new Map(targets.map((t) => [kind === 'id' ? Number(t.id) : t[kind], t]));

  // 2. Validate each change against the member it applies to.
  const prepared: Array<PreparedUpdate & { pos: number }> = [];
  const passwords: Array<string | null> = [];
  keys.forEach((k, pos) => {
    if (k === null) return;
    const target = byKey.get(k);
    if (!target) return book.one(pos, kind === 'id' ? ['id'] : ['properties', kind], 'does_not_exist');
    const item = items[pos] as Record<string, any>;
    const v = new Violations();
    const state = resolveMemberState(schema, item, { existing: target as any, partial: true, now, arrays: bulk.multi_values_update_mode }, v);
    if (!v.empty) return book.add(pos, v);
    const statuses = resolveChannelStatuses(target as any, item, state.properties);
    passwords.push(item.password ?? null);
    prepared.push({
      pos,
      id: Number(target.id),
      properties: state.properties,
      consents: state.consents,
      ...statuses,
      password_hash: null,
      set_person_id: item.person_id !== undefined,
      person_id: item.person_id === undefined || item.person_id === null ? null : String(item.person_id),
      favorite_stores: item.favorite_stores ? [...new Set<number>(item.favorite_stores)] : null,
      subunit_ids: item.subunit_ids ? [...new Set<number>(item.subunit_ids)] : null,
    });
  });

  // 3. New identifiers must be free (in the club and in this bulk).
  const targetIds = new Set(prepared.map((p) => p.id));
  const changedIdentifiers = (name: 'email' | 'msisdn') => prepared.filter((p) => p.properties[name] !== undefined && p.properties[name] !== byKey.get(keys[p.pos]!)?.[name]);
  const { rows: owners } = await tx.query<{ id: number; email: string | null; msisdn: string | null }>(
    `SELECT id, email, msisdn FROM members WHERE loyalty_club_id = $1 AND (email = ANY ($2::text[]) OR msisdn = ANY ($3::text[]))`,
    [bulk.loyalty_club_id, changedIdentifiers('email').map((p) => p.properties.email), changedIdentifiers('msisdn').map((p) => p.properties.msisdn)],
  );
  const claimed = new Map<string, number>();
  for (const o of owners) {
    if (targetIds.has(Number(o.id))) continue; // swaps inside one bulk are not supported: treated as taken below only when clashing
    if (o.email) claimed.set(`email:${o.email}`, Number(o.id));
    if (o.msisdn) claimed.set(`msisdn:${o.msisdn}`, Number(o.id));
  }
  const accepted: typeof prepared = [];
  const inBulk = new Map<string, number>();
  for (const t of targets) {
    if (t.email) inBulk.set(`email:${t.email}`, Number(t.id));
    if (t.msisdn) inBulk.set(`msisdn:${t.msisdn}`, Number(t.id));
  }
  for (const p of prepared) {
    const v = new Violations();
    for (const name of ['email', 'msisdn'] as const) {
      const value = p.properties[name];
      if (value === undefined) continue;
      const key = `${name}:${value}`;
      const owner = claimed.get(key) ?? inBulk.get(key);
      if (owner !== undefined && owner !== p.id) v.add(['properties', name], 'taken');
    }
    if (!v.empty) {
      book.add(p.pos, v);
      continue;
    }
    for (const name of ['email', 'msisdn'] as const) if (p.properties[name] !== undefined) inBulk.set(`${name}:${p.properties[name]}`, p.id);
    accepted.push(p);
  }
  if (passwords.some(Boolean)) {
    const hashes = await hashAll(passwords);
    prepared.forEach((p, i) => (p.password_hash = hashes[i]));
  }

  let updatedIds: number[] = [];
  if (accepted.length) {
    const r = await tx.query<{ id: number }>(
      `UPDATE members m SET properties = r.properties, consents = r.consents, sms_status = r.sms_status, email_status = r.email_status,
              push_status = r.push_status, password_hash = COALESCE(r.password_hash, m.password_hash),
              person_id = CASE WHEN r.set_person_id THEN r.person_id ELSE m.person_id END,
              favorite_stores = COALESCE(r.favorite_stores, m.favorite_stores), subunit_ids = COALESCE(r.subunit_ids, m.subunit_ids),
              updated_at = now()
         FROM jsonb_to_recordset($2::jsonb) AS r(id bigint, properties jsonb, consents jsonb, sms_status text, email_status text,
              push_status text, password_hash text, person_id text, set_person_id boolean, favorite_stores bigint[], subunit_ids bigint[])
        WHERE m.loyalty_club_id = $1 AND m.id = r.id
        RETURNING m.id`,
      [bulk.loyalty_club_id, JSON.stringify(accepted)],
    );
    updatedIds = r.rows.map((x) => Number(x.id));
  }
  await opts.afterWrite?.(updatedIds.length);
  await enqueueForIds(tx, bulk, 'update', updatedIds);
  return { created: 0, updated: updatedIds.length, errorMembers: book.failed.size, errors: book.errors };
}

/** Webhook events for the members of a bulk, only when some subscription wants them. */
async function enqueueForIds(tx: Queryable, bulk: ClaimedBulk, action: 'create' | 'update', ids: number[]): Promise<void> {
  if (!ids.length) return;
  const flag = action === 'create' ? 'is_sent_on_import' : 'is_sent_on_update';
  const { rows } = await tx.query(`SELECT 1 FROM members_changes_subscriptions WHERE loyalty_club_id = $1 AND ${flag} LIMIT 1`, [bulk.loyalty_club_id]);
  if (!rows.length) return;
  const members = await tx.query(`SELECT ${MEMBER_SELECT} FROM members m WHERE m.loyalty_club_id = $1 AND m.id = ANY ($2::bigint[]) ORDER BY m.id`, [bulk.loyalty_club_id, ids]);
  await enqueueMemberEvents(tx, bulk.loyalty_club_id, action, members.rows.map(toMember), bulk.source, new Date().toISOString());
}

// ---- jobs ----

/** One worker run: recover abandoned bulks, then process one due bulk. True when it did work. */
export async function runImportWork(db: Database, opts: { clubId?: number } = {}): Promise<boolean> {
  await reapExpiredBulks(db);
  const bulk = await claimBulk(db, opts);
  if (!bulk) return false;
  await processBulk(db, bulk);
  return true;
}

/**
 * Deletes the personal data of imports older than 24 h (payloads and error details); counters
 * stay. A bulk still unprocessed by then can never run and is marked failed.
 */
export async function purgeImportPersonalData(db: Queryable, olderThanHours = PURGE_AFTER_HOURS): Promise<number> {
  const r = await db.query(
    `UPDATE members_import_bulks
        SET members = NULL, members_errors = '{}'::jsonb, purged_at = now(), updated_at = now(),
            status = CASE WHEN status IN ('waiting', 'waiting_for_retry') THEN 'failed' ELSE status END,
            last_error = CASE WHEN status IN ('waiting', 'waiting_for_retry') THEN 'purged before processing' ELSE last_error END
      WHERE purged_at IS NULL AND status <> 'working' AND created_at < now() - make_interval(hours => $1)`,
    [olderThanHours],
  );
  return r.rowCount;
}
