// TypeBox shapes of the member endpoints: request bodies (validation) and responses (serialisation).
import { Type } from '@sinclair/typebox';
import { Id, Nullable, StringEnum } from '../platform/schema.ts';
import { PageNoSchema, PaginationInfoSchema } from '../platform/pagination.ts';

/** Ids are bigint in the store: the one bounded id schema (422 in a body or query, 404 in a path). */
export const IdValue = () => Id;

export const SlugParams = Type.Object({ loyalty_club_slug: Type.String() });
export const IdParams = Type.Object({ loyalty_club_slug: Type.String(), id: IdValue() });
export const MsisdnParams = Type.Object({ loyalty_club_slug: Type.String(), msisdn: Type.String({ maxLength: 32 }) });
export const EmailParams = Type.Object({ loyalty_club_slug: Type.String(), email: Type.String({ maxLength: 254 }) });

const FreeObject = Type.Object({}, { additionalProperties: true });
const Ids = Type.Array(IdValue(), { maxItems: 1000 });

export const ConsentStateSchema = Type.Object({ status: Type.Boolean(), updated_at: Type.String() });

export const MemberSchema = Type.Object({
  id: Type.Integer(),
  properties: FreeObject,
  consents: Type.Record(Type.String(), ConsentStateSchema),
  sms_status: Type.String(),
  email_status: Type.String(),
  push_status: Type.String(),
  optin_channel: Nullable(Type.String()),
  optin_subchannel: Nullable(Type.String()),
  created_at: Type.String(),
  updated_at: Type.String(),
  banned_until: Nullable(Type.String()),
  person_id: Nullable(Type.Integer()),
  has_password: Type.Boolean(),
  subunit_ids: Type.Array(Type.Integer()),
  has_push_token: Type.Boolean(),
  social_logins: Type.Array(Type.String()),
  favorite_stores: Type.Array(Type.Integer()),
  group_ids: Type.Array(Type.Integer()),
});

const writable = {
  properties: FreeObject,
  consents: Type.Optional(FreeObject),
  password: Type.Optional(Nullable(Type.String({ minLength: 6, maxLength: 128 }))),
  sms_enabled: Type.Optional(Type.Boolean()),
  email_enabled: Type.Optional(Type.Boolean()),
  push_enabled: Type.Optional(Type.Boolean()),
  favorite_stores: Type.Optional(Ids),
  subunit_ids: Type.Optional(Ids),
  banned_until: Type.Optional(Nullable(Type.String({ format: 'date-time' }))),
  // Server-assigned (MPC): a value in a payload is accepted and ignored.
  person_id: Type.Optional(Type.Unknown()),
  event_occurred_at: Type.Optional(Type.String({ format: 'date-time' })),
};

export const CreateMemberBody = Type.Object(
  {
    ...writable,
    ignore_required_properties: Type.Optional(Type.Boolean()),
    // Accepted for compatibility; welcome messages are a messaging concern and not sent here.
    send_sms_welcome_message: Type.Optional(Type.Boolean()),
    send_email_welcome_message: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const UpdateMemberBody = Type.Object(
  { ...writable, properties: Type.Optional(Nullable(FreeObject)), consents: Type.Optional(Nullable(FreeObject)), validate_partially: Type.Optional(Type.Boolean()) },
  { additionalProperties: false },
);

export const MemberListQuery = Type.Object(
  {
    page_no: PageNoSchema(),
    per_page: Type.Integer({ minimum: 1, maximum: 1000, default: 1000 }),
    ids: Type.Optional(Ids),
    store_ids: Type.Optional(Ids),
    properties: Type.Optional(FreeObject),
    search: Type.Optional(Type.String({ maxLength: 200 })),
    sort_by: Type.Optional(Type.Array(Type.String({ maxLength: 100 }), { maxItems: 5 })),
    sort_directions: Type.Optional(Type.Array(StringEnum(['asc', 'desc']), { maxItems: 5 })),
  },
  { additionalProperties: false },
);

export const MemberListResponse = Type.Object({ members: Type.Array(MemberSchema), pagination_info: PaginationInfoSchema });

export const PushTokenSchema = Type.Object({ id: Type.Integer(), token: Type.String(), platform: Nullable(Type.String()), created_at: Type.String() });
export const PushTokenBody = Type.Object(
  { token: Type.String({ minLength: 1, maxLength: 4096 }), platform: StringEnum(['fcm', 'webpush']) },
  { additionalProperties: false },
);

// ---- imports ----

export const ImportBody = Type.Object(
  {
    import_id: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9._:-]+$' })),
    request_number: Type.Optional(Type.Integer({ minimum: 0, maximum: 2_147_483_647 })),
    // Items are checked one by one when the bulk runs: one bad member never rejects the bulk. The
    // request-level reasons (sizes, operation, identifiers, duplicates) answer {"error": reason}.
    members: Type.Optional(Type.Array(Type.Unknown())),
    operation: Type.Optional(Type.String({ maxLength: 100 })),
    member_identifier_type: Type.Optional(Type.String({ maxLength: 100 })),
    multi_values_update_mode: Type.Optional(StringEnum(['replace', 'append', 'update'])),
  },
  { additionalProperties: false },
);

const BulkFields = {
  id: Type.Integer(),
  import_id: Type.String(),
  request_number: Nullable(Type.Integer()),
  operation: Type.String(),
  member_identifier_type: Type.String(),
  status: Type.String(),
  members_in_payload_number: Type.Integer(),
  members_created_number: Type.Integer(),
  members_updated_number: Type.Integer(),
  members_with_validation_errors_number: Type.Integer(),
  retries: Type.Integer(),
  created_at: Type.String(),
  finished_at: Nullable(Type.String()),
};
export const BulkSchema = Type.Object({ ...BulkFields, members_errors: FreeObject });
export const ImportSchema = Type.Object({
  import_id: Type.String(),
  status: Type.String(),
  bulks_number: Type.Integer(),
  members_in_payload_number: Type.Integer(),
  members_created_number: Type.Integer(),
  members_updated_number: Type.Integer(),
  members_with_validation_errors_number: Type.Integer(),
  created_at: Type.String(),
  bulks: Type.Array(Type.Object(BulkFields)),
});

// ---- groups ----

export const GroupSchema = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  type: Nullable(Type.String()),
  description: Nullable(Type.String()),
  automatic: Type.Boolean(),
  system: Type.Boolean(),
  audience_id: Nullable(Type.Integer()),
  audience_conditions: Nullable(Type.Array(FreeObject)),
  members_count: Type.Integer(),
  created_at: Type.String(),
  updated_at: Type.String(),
});
export const GroupEnvelope = Type.Object({ members_group: GroupSchema });
export const GroupListResponse = Type.Object({ members_groups: Type.Array(GroupSchema), pagination_info: PaginationInfoSchema });
const groupFields = {
  name: Type.String({ minLength: 1, maxLength: 200 }),
  type: Type.Optional(Nullable(Type.String({ maxLength: 200 }))),
  description: Type.Optional(Nullable(Type.String({ maxLength: 2000 }))),
  system: Type.Optional(Type.Boolean()),
  audience_id: Type.Optional(Nullable(IdValue())),
  // checked against the club's schema by the audience rules (422 at members_group.audience_conditions)
  audience_conditions: Type.Optional(Nullable(Type.Unknown())),
};
export const GroupBody = Type.Object({ members_group: Type.Object(groupFields, { additionalProperties: false }) }, { additionalProperties: false });
export const GroupUpdateBody = Type.Object(
  { members_group: Type.Object({ ...groupFields, name: Type.Optional(groupFields.name) }, { additionalProperties: false }) },
  { additionalProperties: false },
);
export const GroupMembersBody = Type.Object({ member_ids: Type.Array(IdValue(), { minItems: 1, maxItems: 1000 }) }, { additionalProperties: false });

// ---- webhooks ----

export const SubscriptionSchema = Type.Object({
  id: Type.Integer(),
  url: Type.String(),
  secret_token: Type.String(),
  event_schema_version: Type.Integer(),
  is_sent_on_import: Type.Boolean(),
  is_sent_on_update: Type.Boolean(),
  is_sent_on_delete: Type.Boolean(),
  is_person_id_sent: Type.Boolean(),
  excluded_sources: Type.Record(Type.String(), Type.Array(Type.String())),
  previous_secret_expires_at: Nullable(Type.String()),
  created_at: Type.String(),
  updated_at: Type.String(),
});
export const DeliverySchema = Type.Object({
  id: Type.Integer(),
  kind: StringEnum(['events', 'ping']),
  events_count: Type.Integer(),
  event_ids: Type.Array(Type.Integer()),
  outcome: StringEnum(['delivered', 'retry', 'dropped', 'failed']),
  response_status: Nullable(Type.Integer()),
  error: Nullable(Type.String()),
  duration_ms: Type.Integer(),
  attempted_at: Type.String(),
});
const subscriptionFields = {
  url: Type.String({ minLength: 1, maxLength: 2000 }),
  event_schema_version: Type.Optional(Type.Unsafe<1 | 2>({ type: 'integer', enum: [1, 2] })),
  is_sent_on_import: Type.Optional(Type.Boolean()),
  is_sent_on_update: Type.Optional(Type.Boolean()),
  is_sent_on_delete: Type.Optional(Type.Boolean()),
  is_person_id_sent: Type.Optional(Type.Boolean()),
  excluded_sources: Type.Optional(Type.Record(Type.String(), Type.Array(Type.String({ maxLength: 64 }), { maxItems: 50 }))),
};
export const SubscriptionBody = Type.Object(subscriptionFields, { additionalProperties: false });
export const SubscriptionUpdateBody = Type.Object({ ...subscriptionFields, url: Type.Optional(subscriptionFields.url) }, { additionalProperties: false });

// ---- loyalty clubs and products ----

export const LoyaltyClubSchema = Type.Object({
  id: Type.Integer(),
  community_id: Nullable(Type.Integer()),
  customer_id: Nullable(Type.Integer()),
  main_slug: Type.String(),
  short_slug: Nullable(Type.String()),
  other_slugs: Type.Array(Type.String()),
  name: Type.String(),
  type: Type.String(),
  country: Type.String(),
  timezone: Type.String(),
  member_identifiers: Type.Array(Type.String()),
  new_offers_api_enabled: Type.Boolean(),
});
export const ProductSchema = Type.Object({
  name: Type.String(),
  slug: Type.String(),
  filtered_member_properties: Type.Array(Type.String()),
  subproducts: Type.Array(Type.String()),
  is_webform: Type.Boolean(),
});
