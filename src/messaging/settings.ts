// The club's messaging configuration (`loyalty_clubs.messaging_settings`): which channels are
// configured, default senders, shortener. Read here, written by operators (seed, CLI, SQL).
import type { LoyaltyClub } from '../platform/context.ts';
import type { Violations } from '../platform/errors.ts';
import type { ChannelType, SenderType } from './schemas.ts';

export interface SmsSender {
  type: SenderType;
  value: string;
}

export interface ClubMessagingSettings {
  channels: {
    sms: { configured: boolean; default_sender: SmsSender | null };
    email: { configured: boolean; from_email: string | null; from_name: string | null };
    push: { configured: boolean; android_app_id: string | null; ios_app_id: string | null };
  };
  shortener: { enabled: boolean; base_url: string | null };
}

const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);

/** Normalises the stored JSON: anything missing or malformed counts as not configured. */
export function clubSettings(club: Pick<LoyaltyClub, 'messaging_settings'>, shortenerBaseUrl: string | null = null): ClubMessagingSettings {
  const s = (club.messaging_settings ?? {}) as Record<string, any>;
  const ch = (s.channels ?? {}) as Record<string, any>;
  const enabled = (c: any) => Boolean(c && typeof c === 'object' && c.enabled === true);
  const ds = ch.sms?.default_sender;
  const defaultSender =
    ds && (ds.type === 'alphanumeric' || ds.type === 'international') && typeof ds.value === 'string' ? { type: ds.type as SenderType, value: ds.value } : null;
  return {
    channels: {
      sms: { configured: enabled(ch.sms), default_sender: defaultSender },
      email: { configured: enabled(ch.email), from_email: str(ch.email?.from_email), from_name: str(ch.email?.from_name) },
      push: { configured: enabled(ch.push), android_app_id: str(ch.push?.android_app_id), ios_app_id: str(ch.push?.ios_app_id) },
    },
    shortener: { enabled: s.shortener?.enabled === true, base_url: s.shortener?.enabled === true ? (str(s.shortener?.base_url) ?? shortenerBaseUrl) : null },
  };
}

/**
 * The channels as MPC's Show Settings gives them (DECISIONS "Settings"): each channel's sender
 * data, `null` for a channel the club has not switched on.
 */
export function mpcChannelSettings(s: ClubMessagingSettings) {
  const { sms, email, push } = s.channels;
  return {
    sms: sms.configured ? { sender_type: sms.default_sender?.type ?? null, sender_value: sms.default_sender?.value ?? null } : null,
    email: email.configured ? { from_name: email.from_name, from_email: email.from_email } : null,
    push: push.configured ? { android_app_id: push.android_app_id, ios_app_id: push.ios_app_id } : null,
  };
}

export const channelConfigured = (s: ClubMessagingSettings, type: ChannelType): boolean => s.channels[type].configured;

const ALPHANUMERIC = /^[A-Za-z0-9 .&+_-]+$/;
const MSISDN = /^[1-9]\d{6,14}$/;

/** Sender value rules (§8.2): alphanumeric 2–11 characters, international a valid MSISDN. */
export function checkSenderValue(v: Violations, path: ReadonlyArray<string | number>, type: SenderType, value: string): void {
  switch (type) {
    case 'alphanumeric':
      if (value.trim() === '') v.add(path, 'blank');
      else if (value.length < 2) v.add(path, 'too_short', { min_length: 2 });
      else if (value.length > 11) v.add(path, 'too_long', { max_length: 11 });
      else if (!ALPHANUMERIC.test(value)) v.add(path, 'invalid_format', { format: `/${ALPHANUMERIC.source}/` });
      break;
    case 'international':
      if (value === '') v.add(path, 'blank');
      else if (!MSISDN.test(value)) v.add(path, 'invalid_msisdn');
      break;
  }
}

export interface MergeProperty {
  name: string;
  type: string;
  /** `member`: MPC's `member.*` tags of member recipients; `recipient`: identifiers of a recipient without member. */
  source: 'standard' | 'member_schema' | 'member' | 'recipient';
}

const STANDARD_MERGE_PROPERTIES: MergeProperty[] = [
  { name: 'member_id', type: 'integer', source: 'standard' },
  { name: 'first_name', type: 'string', source: 'standard' },
  { name: 'last_name', type: 'string', source: 'standard' },
  { name: 'email', type: 'string', source: 'standard' },
  { name: 'msisdn', type: 'string', source: 'standard' },
  { name: 'unsubscribe_url', type: 'string', source: 'standard' },
  { name: 'app_token', type: 'string', source: 'recipient' },
];

const MEMBER_IDENTIFIERS: MergeProperty[] = [
  { name: 'member.id', type: 'integer', source: 'member' },
  { name: 'member.msisdn', type: 'string', source: 'member' },
  { name: 'member.email', type: 'string', source: 'member' },
  { name: 'member.app_token', type: 'string', source: 'member' },
];

/**
 * Merge tags usable in templates (DECISIONS "Merge tags"): the flat ones Hei offered before and
 * the club schema's, then MPC's `member.*` — the identifiers and every schema property
 * (jsonb keeps no key order: alphabetical).
 */
export function mergeProperties(memberSchema: { properties?: Record<string, unknown> }): MergeProperty[] {
  const out = [...STANDARD_MERGE_PROPERTIES];
  const schema = Object.entries(memberSchema.properties ?? {}).sort(([x], [y]) => x.localeCompare(y));
  for (const [name, def] of schema) {
    if (!out.some((p) => p.name === name)) out.push({ name, type: String((def as { type?: string }).type ?? 'string'), source: 'member_schema' });
  }
  out.push(...MEMBER_IDENTIFIERS);
  for (const [name, def] of schema) {
    if (!out.some((p) => p.name === `member.${name}`)) out.push({ name: `member.${name}`, type: String((def as { type?: string }).type ?? 'string'), source: 'member' });
  }
  return out;
}
