// The bodies MPC's members-changes receivers read (2021 docs, "Notifications v2" and the
// deprecated "v1"): one event per member change, several events per POST.
import type { Member } from './member-input.ts';

/** MPC's event types: a member's creation, by registration as much as by import, is `import`. */
export type EventType = 'import' | 'update' | 'delete';

export interface ClubRef {
  id: number;
  slug: string;
  name: string;
}

/** A change as written: the member before (null on creation) and after (null on deletion). */
export interface MemberChange {
  before: Member | null;
  after: Member | null;
}

export interface PayloadOptions {
  type: EventType;
  date: string;
  club: ClubRef;
  personIdSent: boolean;
}

type Change = { change: '~' | '+' | '-'; was: unknown; is: unknown };

/** The top-level scalar fields whose changes are reported (2021 › Changes object). */
const TRACKED = ['msisdn', 'email', 'sms_status', 'email_status', 'push_status', 'optin_channel', 'optin_subchannel'] as const;

function flat(m: Member | null): Record<string, unknown> {
  if (!m) return {};
  return {
    msisdn: m.properties.msisdn ?? null,
    email: m.properties.email ?? null,
    sms_status: m.sms_status,
    email_status: m.email_status,
    push_status: m.push_status,
    optin_channel: m.optin_channel,
    optin_subchannel: m.optin_subchannel,
  };
}

const present = (x: unknown) => x !== undefined && x !== null;
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

function diff(was: unknown, is: unknown): Change | null {
  if (!present(was) && !present(is)) return null;
  if (!present(was)) return { change: '+', was: null, is };
  if (!present(is)) return { change: '-', was, is: null };
  return same(was, is) ? null : { change: '~', was, is };
}

function diffMap(was: Record<string, unknown>, is: Record<string, unknown>): Record<string, Change> {
  const out: Record<string, Change> = {};
  for (const key of new Set([...Object.keys(was), ...Object.keys(is)])) {
    const c = diff(was[key], is[key]);
    if (c) out[key] = c;
  }
  return out;
}

const others = (m: Member | null) => {
  if (!m) return {};
  const { msisdn: _m, email: _e, ...rest } = m.properties;
  return rest;
};
const consentValues = (m: Member | null) => Object.fromEntries(Object.entries(m?.consents ?? {}).map(([k, c]) => [k, c.status]));

/** Only what changed, from the state before the write; empty for a deletion. */
export function memberChanges(c: MemberChange): Record<string, unknown> {
  if (!c.after) return {};
  const out: Record<string, unknown> = {};
  const was = flat(c.before);
  const is = flat(c.after);
  for (const key of TRACKED) {
    const d = diff(was[key], is[key]);
    if (d) out[key] = d;
  }
  const consents = diffMap(consentValues(c.before), consentValues(c.after));
  if (Object.keys(consents).length) out.consents = consents;
  const properties = diffMap(others(c.before), others(c.after));
  if (Object.keys(properties).length) out.properties = properties;
  return out;
}

/** v2 `member`: identifiers at the top, consents as `{value, updated_at}`; a deletion only names the member. */
function v2Member(c: MemberChange, personIdSent: boolean): Record<string, unknown> {
  const m = (c.after ?? c.before)!;
  const withPerson = (o: Record<string, unknown>) => (personIdSent ? { ...o, person_id: m.person_id } : o);
  if (!c.after) return withPerson({ id: m.id });
  return withPerson({
    id: m.id,
    msisdn: m.properties.msisdn ?? null,
    email: m.properties.email ?? null,
    properties: others(m),
    consents: Object.fromEntries(Object.entries(m.consents).map(([k, s]) => [k, { value: s.status, updated_at: s.updated_at }])),
    sms_status: m.sms_status,
    email_status: m.email_status,
    push_status: m.push_status,
    optin_channel: m.optin_channel,
    optin_subchannel: m.optin_subchannel,
    created_at: m.created_at,
    updated_at: m.updated_at,
  });
}

export function v2Event(c: MemberChange, o: PayloadOptions): Record<string, unknown> {
  return {
    event: { type: o.type, date: o.date },
    loyalty_club: { id: o.club.id, slug: o.club.slug },
    member: v2Member(c, o.personIdSent),
    member_changes: memberChanges(c),
  };
}

function v1Type(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  if (typeof value === 'boolean') return 'boolean';
  if (value !== null && typeof value === 'object') return 'object';
  return 'string';
}

/** v1 (deprecated) bulk item: every value typed under `properties`, consents as `{value}`. */
export function v1Event(c: MemberChange, o: PayloadOptions): Record<string, unknown> {
  const m = (c.after ?? c.before)!;
  const typed = (entries: Array<[string, unknown]>) => Object.fromEntries(entries.map(([k, v]) => [k, { type: v1Type(v), value: v }]));
  const identifiers: Array<[string, unknown]> = [['msisdn', m.properties.msisdn ?? null], ['email', m.properties.email ?? null]];
  const item: Record<string, unknown> = {
    customer_name: o.club.name,
    customer_id: o.club.id,
    event_type: o.type,
    external_id: m.id,
    properties: c.after
      ? typed([
          ...identifiers,
          ...Object.entries(others(m)),
          ['sms_status', m.sms_status], ['email_status', m.email_status], ['push_status', m.push_status],
          ['optin_channel', m.optin_channel], ['optin_subchannel', m.optin_subchannel],
        ])
      : typed(identifiers),
    consents: c.after ? Object.fromEntries(Object.entries(m.consents).map(([k, s]) => [k, { value: s.status }])) : {},
    created_at: o.date,
    optin_date: m.created_at,
  };
  if (o.personIdSent) item.person_id = m.person_id;
  return item;
}

/** The POST body for a batch of events of one schema version, each already JSON text. */
export function batchBody(version: number, events: string[]): string {
  return version === 2 ? `{"version":2,"events":[${events.join(',')}]}` : `{"version":1,"bulk":[${events.join(',')}]}`;
}
