// TypeBox schemas of the Messaging API: request payloads (validation + types) and response models
// (serialisation + OpenAPI). Property order of the response models is the order of §5.1.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Id, Nullable, StringEnum } from '../platform/schema.ts';
import { PaginationInfoSchema } from '../platform/pagination.ts';
import { MAX_TEMPLATE_LENGTH } from './liquid.ts';
import { SERVICES } from './services.ts';
import { StatusReasonSchema } from './status-reason.ts';

export const CHANNEL_TYPES = ['sms', 'email', 'push'] as const;
export type ChannelType = (typeof CHANNEL_TYPES)[number];
export const TEMPLATE_TYPES = ['plain', 'email', 'bee_email', 'push', 'generic'] as const;
export type TemplateType = (typeof TEMPLATE_TYPES)[number];
export const SENDER_TYPES = ['alphanumeric', 'international'] as const;
export type SenderType = (typeof SENDER_TYPES)[number];
export const SENDING_STATUSES = ['draft', 'scheduled', 'preparing', 'prepared', 'transmitting', 'transmitted', 'cancelled', 'failed', 'skipped'] as const;
export type SendingStatus = (typeof SENDING_STATUSES)[number];
export const AGGREGATED_STATUSES = ['draft', 'scheduled', 'finished'] as const;
export type AggregatedStatus = (typeof AGGREGATED_STATUSES)[number];
export const DISPATCH_STATUSES = ['pending', 'sending', 'sent', 'delivered', 'failed', 'undeliverable', 'skipped', 'cancelled'] as const;
export type DispatchStatus = (typeof DISPATCH_STATUSES)[number];

const Obj = <T extends Record<string, TSchema>>(props: T) => Type.Object(props, { additionalProperties: false });
const Stamp = Type.String({ format: 'date-time' });
const FreeObject = Type.Object({}, { additionalProperties: true });

// ---------- request payloads ----------

export const SenderPayload = Obj({ type: StringEnum(SENDER_TYPES), value: Type.String({ maxLength: 64 }) });

export const TemplateContentPayload = Obj({
  body: Type.Optional(Type.String({ maxLength: MAX_TEMPLATE_LENGTH })),
  subject: Type.Optional(Type.String({ maxLength: 2000 })),
  preheader: Type.Optional(Type.String({ maxLength: 2000 })),
  image_url: Type.Optional(Type.String({ maxLength: 2048 })),
  /** push: the link opened from the notification (MPC's name); `url` is Hei's earlier one. */
  uri: Type.Optional(Type.String({ maxLength: 2048 })),
  url: Type.Optional(Type.String({ maxLength: 2048 })),
  data: Type.Optional(Type.Record(Type.String(), Type.String({ maxLength: 2048 }))),
  /** bee_email: the Beefree JSON design the HTML body was generated from (MPC's name; `json` is Hei's earlier one). */
  bee_json: Type.Optional(FreeObject),
  json: Type.Optional(FreeObject),
});
export type TemplateContent = Static<typeof TemplateContentPayload>;

export const TemplateDefinitionPayload = Obj({
  type: StringEnum(TEMPLATE_TYPES),
  content: TemplateContentPayload,
  wrapper_id: Type.Optional(Nullable(Id)),
});
export type TemplateDefinition = Static<typeof TemplateDefinitionPayload>;

export const ChannelTemplatePayload = Obj({
  type: StringEnum(['inline', 'reference'] as const),
  id: Type.Optional(Id),
  definition: Type.Optional(TemplateDefinitionPayload),
  data: Type.Optional(TemplateDefinitionPayload),
});
export type ChannelTemplateInput = Static<typeof ChannelTemplatePayload>;

export const ChannelPayload = Obj({
  type: StringEnum(CHANNEL_TYPES),
  template: Type.Optional(ChannelTemplatePayload),
  sender: Type.Optional(SenderPayload),
  from_email: Type.Optional(Type.String({ format: 'email', maxLength: 254 })),
  from_name: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
});
export type ChannelInput = Static<typeof ChannelPayload>;

export const SchedulePayload = Obj({
  type: StringEnum(['immediate', 'absolute', 'relative'] as const),
  at: Type.Optional(Type.String({ format: 'date-time' })),
  in: Type.Optional(Type.String({ maxLength: 64 })),
});
export type ScheduleInput = Static<typeof SchedulePayload>;

export const AudiencePayload = Obj({
  type: StringEnum(['reference', 'inline'] as const),
  id: Type.Optional(Id),
  conditions: Type.Optional(Type.Array(Type.Unknown(), { maxItems: 200 })),
});
export type AudienceInput = Static<typeof AudiencePayload>;

export const RecipientPayload = Obj({
  member_id: Type.Optional(Id),
  email: Type.Optional(Type.String({ format: 'email', maxLength: 254 })),
  msisdn: Type.Optional(Type.String({ format: 'msisdn' })),
  /** The push identifier (MPC's name); `push_token` is accepted as Hei's earlier alias. */
  app_token: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  push_token: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  properties: Type.Optional(FreeObject),
});
export type RecipientInput = Static<typeof RecipientPayload>;

export const MAX_RECIPIENTS = 10_000;

const sendingProps = {
  draft: Type.Optional(Type.Boolean()),
  priority: Type.Optional(Type.Integer({ minimum: 1, maximum: 10 })),
  channels_preference: Type.Optional(Nullable(Type.Array(StringEnum(CHANNEL_TYPES), { uniqueItems: true, maxItems: 3 }))),
  schedule: Type.Optional(Nullable(SchedulePayload)),
  audience: Type.Optional(Nullable(AudiencePayload)),
  recipients: Type.Optional(Type.Array(RecipientPayload, { maxItems: MAX_RECIPIENTS })),
  properties: Type.Optional(FreeObject),
};
export const SendingPayload = Obj(sendingProps);
export type SendingInput = Static<typeof SendingPayload>;

const messageProps = {
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  shorten_urls: Type.Optional(Type.Boolean()),
  track_in_shortener: Type.Optional(Type.Boolean()),
  campaign_id: Type.Optional(Nullable(Id)),
  marketing: Type.Optional(Type.Boolean()),
  channels: Type.Optional(Type.Array(ChannelPayload, { minItems: 1, maxItems: 3 })),
};
export const MessageCreatePayload = Obj({ ...messageProps, sending: Type.Optional(SendingPayload) });
export const MessageUpdatePayload = Obj(messageProps);
export type MessageInput = Static<typeof MessageCreatePayload>;

export const StandaloneTemplatePayload = Obj({
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  type: Type.Optional(StringEnum(TEMPLATE_TYPES)),
  content: Type.Optional(TemplateContentPayload),
  wrapper_id: Type.Optional(Nullable(Id)),
});
export type StandaloneTemplateInput = Static<typeof StandaloneTemplatePayload>;

export const CampaignPayload = Obj({
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  description: Type.Optional(Nullable(Type.String({ maxLength: 5000 }))),
  starts_at: Type.Optional(Nullable(Type.String({ format: 'date-time' }))),
  ends_at: Type.Optional(Nullable(Type.String({ format: 'date-time' }))),
});
export type CampaignInput = Static<typeof CampaignPayload>;

export const SenderIdentityPayload = Obj({
  type: Type.Optional(StringEnum(SENDER_TYPES)),
  value: Type.Optional(Type.String({ maxLength: 64 })),
});
export type SenderIdentityInput = Static<typeof SenderIdentityPayload>;

// ---------- response models ----------

export const TemplateContentSchema = Type.Object({
  body: Type.Optional(Type.String()),
  subject: Type.Optional(Type.String()),
  preheader: Type.Optional(Type.String()),
  image_url: Type.Optional(Type.String()),
  uri: Type.Optional(Type.String()),
  url: Type.Optional(Type.String()),
  data: Type.Optional(Type.Record(Type.String(), Type.String())),
  bee_json: Type.Optional(FreeObject),
  json: Type.Optional(FreeObject),
});

export const TemplateSchema = Type.Object({
  id: Type.Integer(),
  wrapper_id: Nullable(Type.Integer()),
  type: StringEnum(TEMPLATE_TYPES),
  content: TemplateContentSchema,
  created_at: Stamp,
  updated_at: Stamp,
});

export const StandaloneTemplateSchema = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  wrapper_id: Nullable(Type.Integer()),
  type: StringEnum(TEMPLATE_TYPES),
  content: TemplateContentSchema,
  created_at: Stamp,
  updated_at: Stamp,
});

// The serializer writes required keys first; the keys after the channel-specific sender fields are
// declared optional only so that the output keeps the documented order (id, type, sender, template, …).
// They are always present.
export const ChannelSchema = Type.Object({
  id: Type.Integer(),
  type: StringEnum(CHANNEL_TYPES),
  sender: Type.Optional(Type.Object({ type: StringEnum(SENDER_TYPES), value: Type.String() })),
  from_email: Type.Optional(Type.String()),
  from_name: Type.Optional(Type.String()),
  template: Type.Optional(TemplateSchema),
  created_at: Type.Optional(Stamp),
  updated_at: Type.Optional(Stamp),
});

export const MessageSendingSchema = Type.Object({
  id: Type.Integer(),
  status: StringEnum(SENDING_STATUSES),
  audience_id: Nullable(Type.Integer()),
  recipients_count: Type.Integer(),
  /** Null until the sending is executed (preparation begun). */
  dispatches_count: Nullable(Type.Integer()),
  /** Distinct members whose dispatch a transport accepted. */
  members_count: Type.Integer(),
  scheduled_at: Nullable(Stamp),
  transmitted_at: Nullable(Stamp),
  created_at: Stamp,
  updated_at: Stamp,
});

export const MessageSchema = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  shorten_urls: Type.Boolean(),
  track_in_shortener: Type.Boolean(),
  service: Type.String(),
  campaign_id: Nullable(Type.Integer()),
  created_at: Stamp,
  updated_at: Stamp,
  channels: Type.Array(ChannelSchema),
  sendings_status: StringEnum(AGGREGATED_STATUSES),
  sendings_count: Type.Integer(),
  latest_sending: Nullable(MessageSendingSchema),
});
export type Message = Static<typeof MessageSchema>;

export const SendingStatsSchema = Type.Object({
  pending: Type.Integer(),
  sending: Type.Integer(),
  sent: Type.Integer(),
  delivered: Type.Integer(),
  failed: Type.Integer(),
  undeliverable: Type.Integer(),
  skipped: Type.Integer(),
  cancelled: Type.Integer(),
  clicks: Type.Integer(),
  unique_clicks: Type.Integer(),
  opens: Type.Integer(),
});

const ScheduleSchema = Type.Object({ type: Type.String(), at: Type.Optional(Type.String()), in: Type.Optional(Type.String()) });
const RecipientSchema = Type.Object({
  member_id: Nullable(Type.Integer()),
  msisdn: Nullable(Type.String()),
  email: Nullable(Type.String()),
  app_token: Nullable(Type.String()),
  properties: Nullable(FreeObject),
});

export const SendingSchema = Type.Object({
  id: Type.Integer(),
  message_id: Type.Integer(),
  service: Type.String(),
  status: StringEnum(SENDING_STATUSES),
  draft: Type.Boolean(),
  priority: Type.Integer(),
  channels_preference: Nullable(Type.Array(StringEnum(CHANNEL_TYPES))),
  /** Hei's earlier name of `scheduled_with`, kept as an alias. */
  schedule: Nullable(ScheduleSchema),
  /** The schedule payload as given (MPC). */
  scheduled_with: Nullable(ScheduleSchema),
  audience: Nullable(Type.Object({ type: Type.String(), id: Type.Optional(Type.Integer()), conditions: Type.Optional(Type.Array(Type.Unknown())) })),
  audience_id: Nullable(Type.Integer()),
  properties: FreeObject,
  recipients_count: Type.Integer(),
  dispatches_count: Nullable(Type.Integer()),
  members_count: Type.Integer(),
  stats: SendingStatsSchema,
  /** Hei: paused by the engine (error burst) until resumed. */
  paused: Type.Boolean(),
  /** Hei: why the sending failed, was cancelled or is paused (src/messaging/status-reason.ts). */
  status_reason: StatusReasonSchema,
  /** Hei: dispatches a Cancel Sending stopped (null until one arrived; 0 when it came too late). */
  cancelled_dispatches_count: Nullable(Type.Integer()),
  /** Hei: the transport the engine waits for — `down`, `throttled`, `disk_full` — or null (DECISIONS "Faults"). */
  transport_state: Nullable(StringEnum(['down', 'throttled', 'disk_full'])),
  /** Hei: dispatches that may have gone out twice (taken over after a worker died while handing them over). */
  possible_duplicates: Type.Integer(),
  scheduled_at: Nullable(Stamp),
  transmitted_at: Nullable(Stamp),
  created_at: Stamp,
  updated_at: Stamp,
  /** The inline recipients (MPC); not in lists. */
  recipients: Type.Optional(Type.Array(RecipientSchema)),
});
export type Sending = Static<typeof SendingSchema>;
/** List Message Sendings: the sending resource without its inline recipients. */
export const SendingListItemSchema = Type.Omit(SendingSchema, ['recipients']);

export const DispatchSchema = Type.Object({
  id: Type.Integer(),
  type: Nullable(StringEnum(CHANNEL_TYPES)),
  /** The content as handed over (keys as the template's); null where it was not stored. */
  content: Nullable(FreeObject),
  member_id: Nullable(Type.Integer()),
  msisdn: Nullable(Type.String()),
  email: Nullable(Type.String()),
  app_token: Nullable(Type.String()),
  transmission_status: StringEnum(['scheduled', 'transmitted', 'failed'] as const),
  delivery_status: StringEnum(['pending', 'delivered', 'failed'] as const),
  external_delivery_status: Nullable(Type.String()),
  scheduled_at: Nullable(Stamp),
  transmitted_at: Nullable(Stamp),
  delivered_at: Nullable(Stamp),
  cleaned_at: Nullable(Stamp),
  created_at: Stamp,
  updated_at: Stamp,
  /** Hei: the engine's own view. */
  sending_id: Type.Integer(),
  status: StringEnum(DISPATCH_STATUSES),
  skip_reason: Nullable(Type.String()),
  error: Nullable(Type.String()),
  provider_id: Nullable(Type.String()),
  attempts: Type.Integer(),
  failed_at: Nullable(Stamp),
});

export const DispatchMemberSchema = Type.Object({
  id: Type.Integer(),
  type: Nullable(StringEnum(CHANNEL_TYPES)),
  msisdn: Nullable(Type.String()),
  email: Nullable(Type.String()),
  app_tokens: Type.Array(Type.String()),
});

export const CampaignSchema = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  description: Nullable(Type.String()),
  starts_at: Nullable(Stamp),
  ends_at: Nullable(Stamp),
  archived: Type.Boolean(),
  archived_at: Nullable(Stamp),
  messages_count: Type.Integer(),
  created_at: Stamp,
  updated_at: Stamp,
});

export const SenderIdentitySchema = Type.Object({
  id: Type.Integer(),
  type: StringEnum(SENDER_TYPES),
  value: Type.String(),
  default: Type.Boolean(),
  created_at: Stamp,
  updated_at: Stamp,
});

export const ErrorSchema = Type.Object({ error: Type.String() });
export const Pagination = PaginationInfoSchema;

/** `{ <key>: T }` envelope. */
export const wrap = <K extends string, T extends TSchema>(key: K, schema: T) => Type.Object({ [key]: schema } as { [P in K]: T });
export const wrapList = <K extends string, T extends TSchema>(key: K, schema: T) =>
  Type.Object({ [key]: Type.Array(schema), pagination_info: PaginationInfoSchema } as { [P in K]: ReturnType<typeof Type.Array<T>> } & { pagination_info: typeof PaginationInfoSchema });

/** Path ids: anything but an integer 1 … 2^53−1 is simply not found (404). */
export const IdParams = Type.Object({ id: Id });
// An unknown service never reaches validation (the authorize hook answers 404 first); the enum is for OpenAPI.
const Service = StringEnum(SERVICES);
export const ServiceParams = Type.Object({ service: Service });
export const ServiceIdParams = Type.Object({ service: Service, id: Id });

export function parseId(raw: string | number): number | null {
  if (!/^[1-9][0-9]{0,15}$/.test(String(raw))) return null;
  const n = Number(raw);
  return Number.isSafeInteger(n) ? n : null;
}
