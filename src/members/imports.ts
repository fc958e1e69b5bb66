// Members imports (members-api §5.3): bulks of ≤ 1000 members stored by the API (or the CLI) and
// processed by background workers.
//
// A bulk is claimed with FOR UPDATE SKIP LOCKED and a lease; it is processed in ONE transaction
// that also marks it finished, so a crash (or an injected failure) leaves no member behind and
// the retry starts from a clean slate: no member is ever created twice. Per-member problems are
// recorded in `members_errors` and never stop the other members of the bulk.
import { createHash, randomUUID } from 'node:crypto';
import { DatabaseUnavailable, type Database, type Queryable } from '../db/connection.ts';
import { completeLeaves, notFound, Violations, type ErrorsTree } from '../platform/errors.ts';
import { checkInput } from '../platform/input-guard.ts';
import { loadMemberSchema, type MemberSchema } from './schema.ts';
import { normaliseEmail, normaliseMsisdn, resolveChannelStatuses, resolveMemberState, type ConsentState } from './member-input.ts';
import { hashPassword, MEMBER_SELECT, toMember, type Member } from './members.ts';
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

/** The seven reasons MPC refuses a whole import request with (`422 {"error": reason}`). */
export type ImportRefusal =
  | 'invalid_operation' | 'invalid_member_identifier_type' | 'members_empty' | 'members_size_incorrect'
  | 'missing_identifier' | 'duplicated_emails' | 'duplicated_msisdns';

const objectOf = (x: unknown): Record<string, any> | null => (x && typeof x === 'object' && !Array.isArray(x) ? (x as Record<string, any>) : null);

/**
 * Request-level checks of the API (the CLI leaves these to the per-member errors): the first
 * documented reason that applies, else null. `identifiers` are the club schema's identifiers.
 */
export function importRefusal(req: { members?: unknown; operation?: unknown; member_identifier_type?: unknown }, identifiers: string[]): ImportRefusal | null {
  if (req.operation !== undefined && req.operation !== 'create' && req.operation !== 'update') return 'invalid_operation';
  const kind = req.member_identifier_type ?? 'id';
  if (kind !== 'id' && !((kind === 'email' || kind === 'msisdn') && identifiers.includes(kind))) return 'invalid_member_identifier_type';
  if (!Array.isArray(req.members) || req.members.length === 0) return 'members_empty';
  if (req.members.length > MAX_BULK_MEMBERS) return 'members_size_incorrect';
  const items = req.members.map(objectOf);
  const props = items.map((i) => objectOf(i?.properties) ?? {});
  const has = (x: unknown) => (typeof x === 'string' && x.trim() !== '') || typeof x === 'number';
  const missing = items.some((item, i) => {
    if (!item) return false; // not an object: a per-member error
    if ((req.operation ?? 'create') === 'update') return kind === 'id' ? !has(item.id) : !has(props[i][kind as string]);
    return !identifiers.some((name) => has(props[i][name]));
  });
  if (missing) return 'missing_identifier';
  const duplicated = (name: 'email' | 'msisdn') => {
    const seen = new Set<string>();
    for (const p of props) {
      if (typeof p[name] !== 'string') continue;
      const value = (name === 'email' ? normaliseEmail(p[name]) : normaliseMsisdn(p[name])) ?? p[name].trim().toLowerCase();
      if (seen.has(value)) return true;
      seen.add(value);
    }
    return false;
  };
  if (duplicated('email')) return 'duplicated_emails';
  if (duplicated('msisdn')) return 'duplicated_msisdns';
  return null;
}

const requestHash = (req: ImportRequest) =>
  createHash('sha256').update(JSON.stringify([req.operation ?? 'create', req.member_identifier_type ?? 'id', req.multi_values_update_mode ?? 'replace', req.members])).digest('hex');

/**
 * Stores one bulk (status `waiting`); member-level problems come later. The same bulk sent again
 * (same `import_id`, `request_number` and body — a retry after a timeout) answers the stored one
 * with `existing: true`; the same numbers with another body → 422 `taken`. A `request_number`
 * without `import_id` means nothing and is ignored.
 */
export async function submitImportBulk(db: Queryable, clubId: number, req: ImportRequest, source: string): Promise<{ bulk: ImportBulk; existing: boolean }> {
  const v = new Violations();
  if (!Array.isArray(req.members) || req.members.length === 0) v.add(['members'], 'blank');
  else if (req.members.length > MAX_BULK_MEMBERS) v.add(['members'], 'too_long', { max_length: MAX_BULK_MEMBERS });
  v.throwIfAny();
  const importId = req.import_id ?? randomUUID();
  const requestNumber = req.import_id === undefined ? null : req.request_number ?? null;
  const hash = requestHash(req);
  if (requestNumber !== null) {
    const { rows } = await db.query(`SELECT ${BULK_COLUMNS}, request_hash FROM members_import_bulks WHERE loyalty_club_id = $1 AND import_id = $2 AND request_number = $3`, [clubId, importId, requestNumber]);
    if (rows[0] && rows[0].request_hash === hash) return { bulk: toBulk(rows[0]), existing: true };
    if (rows[0]) v.add(['request_number'], 'taken').throwIfAny();
  }
  const mode = req.multi_values_update_mode === 'append' ? 'append' : 'replace';
  // A member whose text the store cannot hold (NUL, lone surrogates, prototype keys) is reported as
  // its row's error, stored as null; the rest of the bulk goes on.
  const rejected: Record<string, ErrorsTree> = {};
  const members = req.members.map((item, pos) => {
    const problems = checkInput(item, [], new Violations());
    if (problems.empty) return item;
    rejected[`#${pos}`] = problems.tree;
    return null;
  });
  const { rows } = await db.query(
    `INSERT INTO members_import_bulks (loyalty_club_id, import_id, request_number, operation, member_identifier_type,
       multi_values_update_mode, source, members, members_in_payload_number, request_hash, members_errors)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11::jsonb) RETURNING ${BULK_COLUMNS}`,
    [
      clubId, importId, requestNumber, req.operation ?? 'create', req.member_identifier_type ?? 'id', mode, source,
      JSON.stringify(members), req.members.length, hash, JSON.stringify(rejected),
    ],
  );
  return { bulk: toBulk(rows[0]), existing: false };
}

export async function getImportBulkByRequestNumber(db: Queryable, clubId: number, importId: string, requestNumber: number): Promise<ImportBulk> {
  const { rows } = await db.query(`SELECT ${BULK_COLUMNS} FROM members_import_bulks WHERE loyalty_club_id = $1 AND import_id = $2 AND request_number = $3`, [clubId, importId, requestNumber]);
  if (!rows[0]) throw notFound('Import bulk');
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

/** `person_id` is server-assigned and `updated_at` is the server's: both accepted and ignored. */
const ITEM_KEYS = new Set([
  'id', 'properties', 'consents', 'password', 'sms_enabled', 'email_enabled', 'push_enabled', 'optin_channel', 'optin_subchannel',
  'favorite_stores', 'subunit_ids', 'person_id', 'created_at', 'updated_at',
]);
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/;

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
  favorite_stores: number[];
  subunit_ids: number[];
  created_at: string;
}

interface PreparedUpdate {
  pos: number;
  id: number;
  properties: Record<string, unknown>;
  consents: Record<string, ConsentState>;
  sms_status: string;
  email_status: string;
  push_status: string;
  password_hash: string | null;
  favorite_stores: number[] | null;
  subunit_ids: number[] | null;
}

const isIdArray = (x: unknown) => Array.isArray(x) && x.length <= 1000 && x.every((i) => Number.isSafeInteger(i) && i > 0);

/** Shape checks of an import item beyond properties / consents. */
function checkItem(item: Record<string, unknown>, operation: ImportOperation, identifier: IdentifierType, v: Violations): void {
  checkInput(item, [], v); // rows from a file (CLI) meet the same text rule as the API's
  if (!v.empty) return;
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
  if (item.created_at !== undefined && item.created_at !== null && (typeof item.created_at !== 'string' || !DATE_TIME.test(item.created_at) || Number.isNaN(Date.parse(item.created_at)))) {
    v.add(['created_at'], 'invalid_iso_8601_time');
  }
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
      const { rows } = await tx.query<{ status: string; lease_token: string | null; members: unknown[] | null; members_errors: Record<string, ErrorsTree> }>(
        `SELECT status, lease_token, ${opts.members ? 'NULL::jsonb AS members' : 'members'}, members_errors FROM members_import_bulks WHERE id = $1 FOR UPDATE`,
        [bulk.id],
      );
      const row = rows[0];
      if (!row || row.status !== 'working' || row.lease_token !== bulk.lease_token) throw new LeaseLost();
      const items = opts.members ?? row.members;
      if (!items) throw new Error('import payload was purged before processing');
      const schema = await loadMemberSchema(tx, bulk.loyalty_club_id);
      // Rows refused when the bulk was submitted (see submitImportBulk) keep their errors.
      const rejected = opts.members ? {} : row.members_errors;
      const result = bulk.operation === 'create' ? await importCreate(tx, schema, bulk, items, opts, rejected) : await importUpdate(tx, schema, bulk, items, opts, rejected);
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
    // A database outage is no failed run: the lease is still ours, runImportWork runs it again.
    if (err instanceof DatabaseUnavailable) throw err;
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
  private readonly byKey = new Map<string, { v: Violations; pos: number }>();
  readonly failed = new Set<number>();
  constructor(
    private readonly items: unknown[],
    private readonly identifier: IdentifierType,
  ) {}
  add(pos: number, v: Violations): void {
    this.failed.add(pos);
    const key = errorKey(this.items[pos], this.identifier, pos);
    const existing = this.byKey.get(key);
    if (existing) existing.v.merge([], v);
    else this.byKey.set(key, { v, pos });
  }
  one(pos: number, path: Array<string | number>, error: string, options?: Record<string, unknown>): void {
    this.add(pos, new Violations().add(path, error, options));
  }
  /** Errors found at submit time (`#<pos>` → tree); answers the positions to skip. */
  seed(rejected: Record<string, ErrorsTree>): Set<number> {
    const positions = new Set<number>();
    for (const [key, tree] of Object.entries(rejected)) {
      const pos = Number(key.slice(1));
      if (!key.startsWith('#') || !Number.isInteger(pos)) continue;
      this.add(pos, Violations.fromTree(tree));
      positions.add(pos);
    }
    return positions;
  }
  get errors(): Record<string, ErrorsTree> {
    // Leaves in their API shape, with the values of the member item they describe.
    return Object.fromEntries([...this.byKey].map(([k, { v, pos }]) => [k, completeLeaves(v.tree, this.items[pos])]));
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

type TargetRow = Record<string, any> & { id: number };

/**
 * `create` creates new members or updates existing ones, matched by e-mail and MSISDN (MPC's
 * upsert); an item whose e-mail and MSISDN belong to two different members is a member error.
 */
async function importCreate(tx: Queryable, schema: MemberSchema, bulk: ClaimedBulk, items: unknown[], opts: ProcessOptions, rejected: Record<string, ErrorsTree> = {}): Promise<StepResult> {
  const book = new ErrorBook(items, bulk.member_identifier_type);
  const refused = book.seed(rejected);
  const now = new Date().toISOString();
  const prepared: PreparedCreate[] = [];
  const seenEmail = new Map<string, number>();
  const seenMsisdn = new Map<string, number>();
  items.forEach((raw, pos) => {
    if (refused.has(pos)) return;
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
    prepared.push({
      pos,
      properties: state.properties,
      consents: state.consents,
      ...statuses,
      optin_channel: item.optin_channel ?? 'import',
      optin_subchannel: item.optin_subchannel ?? bulk.import_id,
      password_hash: item.password ?? null, // hashed below, for new members only
      favorite_stores: [...new Set<number>(item.favorite_stores ?? [])],
      subunit_ids: [...new Set<number>(item.subunit_ids ?? [])],
      created_at: item.created_at ? new Date(item.created_at).toISOString() : now,
    });
  });

  // Existing members by identifier: those items are updates.
  const emails = prepared.map((p) => p.properties.email).filter((x) => x !== undefined);
  const msisdns = prepared.map((p) => p.properties.msisdn).filter((x) => x !== undefined);
  const { rows: existing } = emails.length || msisdns.length
    ? await tx.query<TargetRow>(
        `SELECT id, properties, consents, sms_status, email_status, push_status, email, msisdn FROM members
          WHERE loyalty_club_id = $1 AND (email = ANY ($2::text[]) OR msisdn = ANY ($3::text[])) ORDER BY id FOR UPDATE`,
        [bulk.loyalty_club_id, emails, msisdns],
      )
    : { rows: [] as TargetRow[] };
  const byEmail = new Map(existing.filter((r) => r.email).map((r) => [r.email as string, r]));
  const byMsisdn = new Map(existing.filter((r) => r.msisdn).map((r) => [r.msisdn as string, r]));
  const fresh: PreparedCreate[] = [];
  const matched: Array<{ pos: number; target: TargetRow }> = [];
  for (const p of prepared) {
    const a = p.properties.email !== undefined ? byEmail.get(p.properties.email as string) : undefined;
    const b = p.properties.msisdn !== undefined ? byMsisdn.get(p.properties.msisdn as string) : undefined;
    if (a && b && Number(a.id) !== Number(b.id)) book.one(p.pos, ['properties'], 'identifiers_of_different_members', { member_ids: [Number(a.id), Number(b.id)] });
    else if (a || b) matched.push({ pos: p.pos, target: (a ?? b)! });
    else fresh.push(p);
  }

  if (fresh.some((p) => p.password_hash)) {
    const hashes = await hashAll(fresh.map((p) => p.password_hash));
    fresh.forEach((p, i) => (p.password_hash = hashes[i]));
  }
  let created: Array<{ id: number; email: string | null; msisdn: string | null }> = [];
  if (fresh.length) {
    // One statement for the new members; a member created meanwhile by another writer with the
    // same e-mail / msisdn is skipped by the unique indexes and reported below.
    const r = await tx.query<{ id: number; email: string | null; msisdn: string | null }>(
      `INSERT INTO members (loyalty_club_id, properties, consents, sms_status, email_status, push_status, optin_channel,
                            optin_subchannel, password_hash, favorite_stores, subunit_ids, created_at, updated_at)
       SELECT $1, r.properties, r.consents, r.sms_status, r.email_status, r.push_status, r.optin_channel,
              r.optin_subchannel, r.password_hash, r.favorite_stores, r.subunit_ids, r.created_at, now()
         FROM jsonb_to_recordset($2::jsonb) AS r(pos int, properties jsonb, consents jsonb, sms_status text, email_status text,
              push_status text, optin_channel text, optin_subchannel text, password_hash text,
              favorite_stores bigint[], subunit_ids bigint[], created_at timestamptz)
        ORDER BY r.pos
       ON CONFLICT DO NOTHING
       RETURNING id, email, msisdn`,
      [bulk.loyalty_club_id, JSON.stringify(fresh)],
    );
    created = r.rows;
  }
  if (created.length < fresh.length) {
    const byE = new Set(created.map((c) => c.email).filter(Boolean));
    const byM = new Set(created.map((c) => c.msisdn).filter(Boolean));
    for (const p of fresh) {
      const skipped = p.properties.email !== undefined ? !byE.has(p.properties.email as string) : p.properties.msisdn !== undefined && !byM.has(p.properties.msisdn as string);
      if (skipped) book.one(p.pos, [], 'taken');
    }
  }
  await opts.afterWrite?.(created.length);
  const createdIds = created.map((c) => Number(c.id));
  if (createdIds.length && (await subscribed(tx, bulk.loyalty_club_id, 'is_sent_on_import'))) {
    const after = await loadMembers(tx, bulk.loyalty_club_id, createdIds);
    await enqueueMemberEvents(tx, bulk.loyalty_club_id, 'create', createdIds.map((id) => ({ before: null, after: after.get(id)! })), bulk.source, now);
  }
  const updated = await applyUpdates(tx, schema, bulk, book, items, matched, now);
  return { created: created.length, updated, errorMembers: book.failed.size, errors: book.errors };
}

async function importUpdate(tx: Queryable, schema: MemberSchema, bulk: ClaimedBulk, items: unknown[], opts: ProcessOptions, rejected: Record<string, ErrorsTree> = {}): Promise<StepResult> {
  const book = new ErrorBook(items, bulk.member_identifier_type);
  const refused = book.seed(rejected);
  const now = new Date().toISOString();
  const kind = bulk.member_identifier_type;
  // 1. Find each item's target.
  const keys: Array<string | number | null> = items.map((raw, pos) => {
    if (refused.has(pos)) return null;
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
      if (!Number.isSafeInteger(item.id) || item.id < 1) return book.one(pos, ['id'], 'not_an_integer'), null;
      return item.id as number;
    }
    const raw2 = item.properties?.[kind];
    if (raw2 === undefined || raw2 === null || raw2 === '') return book.one(pos, ['properties', kind], 'blank'), null;
    const norm = typeof raw2 === 'string' ? (kind === 'email' ? normaliseEmail(raw2) : normaliseMsisdn(raw2)) : null;
    if (norm === null) return book.one(pos, ['properties', kind], kind === 'email' ? 'invalid_email' : 'invalid_msisdn'), null;
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
    ? await tx.query<TargetRow>(
        `SELECT id, properties, consents, sms_status, email_status, push_status, email, msisdn FROM members
          WHERE loyalty_club_id = $1 AND ${column} = ANY ($2::${kind === 'id' ? 'bigint' : 'text'}[]) ORDER BY id FOR UPDATE`,
        [bulk.loyalty_club_id, lookup],
      )
    : { rows: [] as TargetRow[] };
  const byKey = new Map(targets.map((t) => [kind === 'id' ? Number(t.id) : t[kind], t]));
  const matched: Array<{ pos: number; target: TargetRow }> = [];
  keys.forEach((k, pos) => {
    if (k === null) return;
    const target = byKey.get(k);
    if (!target) return book.one(pos, kind === 'id' ? ['id'] : ['properties', kind], 'does_not_exist');
    matched.push({ pos, target });
  });
  const updated = await applyUpdates(tx, schema, bulk, book, items, matched, now);
  await opts.afterWrite?.(updated);
  return { created: 0, updated, errorMembers: book.failed.size, errors: book.errors };
}

/** Validates each item against the member it applies to, checks identifiers, writes, notifies. */
async function applyUpdates(
  tx: Queryable, schema: MemberSchema, bulk: ClaimedBulk, book: ErrorBook, items: unknown[], matched: Array<{ pos: number; target: TargetRow }>, now: string,
): Promise<number> {
  if (!matched.length) return 0;
  const prepared: PreparedUpdate[] = [];
  for (const { pos, target } of matched) {
    const item = items[pos] as Record<string, any>;
    const v = new Violations();
    const state = resolveMemberState(schema, item, { existing: target as any, partial: true, now, arrays: bulk.multi_values_update_mode }, v);
    if (!v.empty) {
      book.add(pos, v);
      continue;
    }
    const statuses = resolveChannelStatuses(target as any, item, state.properties);
    prepared.push({
      pos,
      id: Number(target.id),
      properties: state.properties,
      consents: state.consents,
      ...statuses,
      password_hash: item.password ?? null,
      favorite_stores: item.favorite_stores ? [...new Set<number>(item.favorite_stores)] : null,
      subunit_ids: item.subunit_ids ? [...new Set<number>(item.subunit_ids)] : null,
    });
  }

  // New identifiers must be free (in the club and in this bulk).
  const targetById = new Map(matched.map((m) => [Number(m.target.id), m.target]));
  const targetIds = new Set(prepared.map((p) => p.id));
  const changedIdentifiers = (name: 'email' | 'msisdn') => prepared.filter((p) => p.properties[name] !== undefined && p.properties[name] !== targetById.get(p.id)?.[name]);
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
  const accepted: PreparedUpdate[] = [];
  const inBulk = new Map<string, number>();
  for (const t of targetById.values()) {
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
  if (!accepted.length) return 0;
  if (accepted.some((p) => p.password_hash)) {
    const hashes = await hashAll(accepted.map((p) => p.password_hash));
    accepted.forEach((p, i) => (p.password_hash = hashes[i]));
  }
  const ids = accepted.map((p) => p.id);
  const watched = await subscribed(tx, bulk.loyalty_club_id, 'is_sent_on_update');
  const before = watched ? await loadMembers(tx, bulk.loyalty_club_id, ids) : null;
  const r = await tx.query<{ id: number }>(
    `UPDATE members m SET properties = r.properties, consents = r.consents, sms_status = r.sms_status, email_status = r.email_status,
            push_status = r.push_status, password_hash = COALESCE(r.password_hash, m.password_hash),
            favorite_stores = COALESCE(r.favorite_stores, m.favorite_stores), subunit_ids = COALESCE(r.subunit_ids, m.subunit_ids),
            updated_at = now()
       FROM jsonb_to_recordset($2::jsonb) AS r(id bigint, properties jsonb, consents jsonb, sms_status text, email_status text,
            push_status text, password_hash text, favorite_stores bigint[], subunit_ids bigint[])
      WHERE m.loyalty_club_id = $1 AND m.id = r.id
      RETURNING m.id`,
    [bulk.loyalty_club_id, JSON.stringify(accepted)],
  );
  const updatedIds = r.rows.map((x) => Number(x.id)).sort((a, b) => a - b);
  if (before && updatedIds.length) {
    const after = await loadMembers(tx, bulk.loyalty_club_id, updatedIds);
    await enqueueMemberEvents(tx, bulk.loyalty_club_id, 'update', updatedIds.map((id) => ({ before: before.get(id)!, after: after.get(id)! })), bulk.source, now);
  }
  return updatedIds.length;
}

/** Whether some subscription of the club wants this kind of event (members are loaded only then). */
async function subscribed(tx: Queryable, clubId: number, flag: 'is_sent_on_import' | 'is_sent_on_update'): Promise<boolean> {
  const { rows } = await tx.query(`SELECT 1 FROM members_changes_subscriptions WHERE loyalty_club_id = $1 AND ${flag} LIMIT 1`, [clubId]);
  return rows.length > 0;
}

async function loadMembers(tx: Queryable, clubId: number, ids: number[]): Promise<Map<number, Member>> {
  const { rows } = await tx.query(`SELECT ${MEMBER_SELECT} FROM members m WHERE m.loyalty_club_id = $1 AND m.id = ANY ($2::bigint[]) ORDER BY m.id`, [clubId, ids]);
  return new Map(rows.map((row) => [Number(row.id), toMember(row)]));
}

// ---- jobs ----

/** One worker run: recover abandoned bulks, then process one due bulk. True when it did work. */
// A bulk whose processing a database outage cut short (its transaction rolled back): this worker
// still holds its lease and runs it again as soon as the database answers (DECISIONS "Faults").
const interrupted = new WeakMap<Database, ClaimedBulk>();

export async function runImportWork(db: Database, opts: { clubId?: number } = {}): Promise<boolean> {
  let bulk = interrupted.get(db) ?? null;
  interrupted.delete(db);
  if (!bulk) {
    await reapExpiredBulks(db);
    bulk = await claimBulk(db, opts);
  }
  if (!bulk) return false;
  try {
    await processBulk(db, bulk);
  } catch (err) {
    if (err instanceof DatabaseUnavailable) interrupted.set(db, bulk);
    throw err;
  }
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
