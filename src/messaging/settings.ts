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
    push: { configured: boolean };
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
      push: { configured: enabled(ch.push) },
    },
    shortener: { enabled: s.shortener?.enabled === true, base_url: s.shortener?.enabled === true ? (str(s.shortener?.base_url) ?? shortenerBaseUrl) : null },
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
  source: 'standard' | 'member_schema';
}

const STANDARD_MERGE_PROPERTIES: MergeProperty[] = [
  { name: 'member_id', type: 'integer', source: 'standard' },
  { name: 'first_name', type: 'string', source: 'standard' },
  { name: 'last_name', type: 'string', source: 'standard' },
  { name: 'email', type: 'string', source: 'standard' },
  { name: 'msisdn', type: 'string', source: 'standard' },
  { name: 'unsubscribe_url', type: 'string', source: 'standard' },
];

/** Merge tags usable in templates: the standard ones, then the club schema's (jsonb keeps no key order: alphabetical). */
export function mergeProperties(memberSchema: { properties?: Record<string, unknown> }): MergeProperty[] {
  const out = [...STANDARD_MERGE_PROPERTIES];
  for (const [name, def] of Object.entries(memberSchema.properties ?? {}).sort(([x], [y]) => x.localeCompare(y))) {
    if (!out.some((p) => p.name === name)) out.push({ name, type: String((def as { type?: string }).type ?? 'string'), source: 'member_schema' });
  }
  return out;
}
