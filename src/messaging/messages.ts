// Messages (§5.1, §6.1–§6.3, §13.1–§13.8): channels with their templates and senders, the
// aggregated sendings status, create (with an optional first sending), update, duplicate, delete.
import type { Database, Queryable } from '../db/connection.ts';
import type { LoyaltyClub } from '../platform/context.ts';
import { limitOffset, orderBy, paginationInfo, type ListQuery, selectPage } from '../platform/pagination.ts';
import { ApiError, forbidden, notAllowed, Violations } from '../platform/errors.ts';
import { PERMIT_WITHOUT_CONSENTS, SERVICE_INFO, type ServiceName } from './services.ts';
import { channelConfigured, checkSenderValue, clubSettings } from './settings.ts';
import {
  checkAudienceExists,
  checkSendingPayload,
  checkSendingPermits,
  dispatchStats,
  EXECUTING,
  FINISHED,
  insertSending,
  listSendings,
  messageChannelTypes,
  serializeSending,
} from './sendings.ts';
import {
  checkContent,
  checkWrapper,
  cleanContent,
  findStandaloneTemplate,
  findTemplatesByIds,
  insertTemplate,
  serializeTemplate,
  templateFitsChannel,
} from './templates.ts';
import { iso } from '../platform/schema.ts';
import type { AggregatedStatus, ChannelInput, ChannelType, MessageInput, SenderType, SendingStatus, TemplateContent, TemplateType } from './schemas.ts';

type Path = ReadonlyArray<string | number>;

// ---------- reading ----------

interface MessageRow {
  id: number;
  loyalty_club_id: number;
  service: ServiceName;
  name: string;
  shorten_urls: boolean;
  track_in_shortener: boolean;
  campaign_id: number | null;
  marketing: boolean;
  created_at: Date;
  updated_at: Date;
  sendings_count: number;
  sendings_status: AggregatedStatus;
}

/**
 * The aggregated status of §9.4 in SQL, so that lists filter on it: no sendings or all drafts →
 * draft, all finished → finished, anything else → scheduled.
 */
export const MESSAGE_FROM = `messages m
  LEFT JOIN message_campaigns c ON c.id = m.campaign_id
  CROSS JOIN LATERAL (
    SELECT count(*)::int AS sendings_count,
      CASE WHEN count(*) = 0 OR bool_and(s.status = 'draft') THEN 'draft'
           WHEN bool_and(s.status IN (${FINISHED.map((f) => `'${f}'`).join(', ')})) THEN 'finished'
           ELSE 'scheduled' END AS sendings_status
      FROM sendings s WHERE s.message_id = m.id) agg`;

export const MESSAGE_COLUMNS = `m.id, m.loyalty_club_id, m.service, m.name, m.shorten_urls, m.track_in_shortener, m.campaign_id,
  m.marketing, m.created_at, m.updated_at, agg.sendings_count, agg.sendings_status`;

/** Pure: the aggregated status of a set of sending statuses (§9.4); the SQL above does the same. */
export function aggregateStatus(statuses: SendingStatus[]): AggregatedStatus {
  if (statuses.every((s) => s === 'draft')) return 'draft';
  if (statuses.every((s) => FINISHED.includes(s))) return 'finished';
  return 'scheduled';
}

interface ChannelRow {
  id: number;
  message_id: number;
  position: number;
  type: ChannelType;
  template_id: number;
  sender_type: SenderType | null;
  sender_value: string | null;
  from_email: string | null;
  from_name: string | null;
  created_at: Date;
  updated_at: Date;
}

async function channelsOf(db: Queryable, messageIds: number[]): Promise<ChannelRow[]> {
  if (!messageIds.length) return [];
  return (
    await db.query<ChannelRow>(
      `SELECT id, message_id, position, type, template_id, sender_type, sender_value, from_email, from_name, created_at, updated_at
         FROM message_channels WHERE message_id = ANY($1::bigint[]) ORDER BY message_id, position`,
      [messageIds],
    )
  ).rows;
}

/** Full Message models (§5.1) for rows already read with MESSAGE_FROM / MESSAGE_COLUMNS. */
export async function toMessages(db: Queryable, rows: MessageRow[]) {
  const ids = rows.map((r) => r.id);
  const channels = await channelsOf(db, ids);
  const templates = await findTemplatesByIds(db, channels.map((c) => c.template_id));
  const latest = ids.length
    ? (
        await db.query<any>(
          `SELECT DISTINCT ON (message_id) id, message_id, status, audience_id, recipients_count, dispatches_count, members_count,
                  scheduled_at, transmitted_at, created_at, updated_at
             FROM sendings WHERE message_id = ANY($1::bigint[]) ORDER BY message_id, created_at DESC, id DESC`,
          [ids],
        )
      ).rows
    : [];
  const latestBy = new Map(latest.map((s) => [s.message_id as number, s]));
  return rows.map((m) => {
    const s = latestBy.get(m.id);
    return {
      id: m.id,
      name: m.name,
      shorten_urls: m.shorten_urls,
      track_in_shortener: m.track_in_shortener,
      service: m.service,
      campaign_id: m.campaign_id,
      created_at: iso(m.created_at)!,
      updated_at: iso(m.updated_at)!,
      channels: channels
        .filter((c) => c.message_id === m.id)
        .map((c) => ({
          id: c.id,
          type: c.type,
          ...(c.type === 'sms' && c.sender_type && c.sender_value !== null ? { sender: { type: c.sender_type, value: c.sender_value } } : {}),
          ...(c.type === 'email' && c.from_email !== null ? { from_email: c.from_email } : {}),
          ...(c.type === 'email' && c.from_name !== null ? { from_name: c.from_name } : {}),
          template: serializeTemplate(templates.get(c.template_id)!),
          created_at: iso(c.created_at)!,
          updated_at: iso(c.updated_at)!,
        })),
      sendings_status: m.sendings_status,
      sendings_count: m.sendings_count,
      latest_sending: s
        ? {
            id: s.id,
            status: s.status,
            audience_id: s.audience_id,
            recipients_count: s.recipients_count,
            dispatches_count: s.dispatches_count,
            members_count: s.members_count,
            scheduled_at: iso(s.scheduled_at),
            transmitted_at: iso(s.transmitted_at),
            created_at: iso(s.created_at)!,
            updated_at: iso(s.updated_at)!,
          }
        : null,
    };
  });
}

export async function findMessageRow(db: Queryable, clubId: number, service: string, id: number, lock = false): Promise<MessageRow | null> {
  const { rows } = await db.query<MessageRow>(
    `SELECT ${MESSAGE_COLUMNS} FROM ${MESSAGE_FROM} WHERE m.id = $1 AND m.loyalty_club_id = $2 AND m.service = $3`,
    [id, clubId, service],
  );
  if (rows[0] && lock) await db.query('SELECT id FROM messages WHERE id = $1 FOR UPDATE', [id]);
  return rows[0] ?? null;
}

export async function loadMessage(db: Queryable, clubId: number, service: string, id: number) {
  const row = await findMessageRow(db, clubId, service, id);
  if (!row) throw new ApiError(404, 'Message not found');
  return (await toMessages(db, [row]))[0];
}

// ---------- lists ----------

export type MessagesQuery = ListQuery & { sendings_status?: string; campaign_id?: number; archived?: boolean; search?: string; service?: string[] };
export const MESSAGE_SORT = { created_at: 'm.created_at', updated_at: 'm.updated_at', name: 'm.name', id: 'm.id' };

const likePattern = (s: string) => `%${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/** List Messages / Messages Overview: the club's messages of `services`, filtered, sorted, one page. */
export async function listMessages(db: Queryable, clubId: number, services: string[], q: MessagesQuery) {
  const params: unknown[] = [clubId, services];
  const where = ['m.loyalty_club_id = $1', 'm.service = ANY($2::text[])'];
  const param = (v: unknown) => `$${params.push(v)}`;
  if (q.sendings_status !== undefined) where.push(`agg.sendings_status = ${param(q.sendings_status)}`);
  if (q.campaign_id !== undefined) where.push(`m.campaign_id = ${param(q.campaign_id)}`);
  if (q.archived !== undefined) where.push(`${q.archived ? '' : 'NOT '}(m.archived_at IS NOT NULL OR c.archived_at IS NOT NULL)`);
  if (q.search !== undefined) {
    const p = param(likePattern(q.search));
    where.push(`EXISTS (SELECT 1 FROM message_channels ch JOIN message_templates t ON t.id = ch.template_id
      WHERE ch.message_id = m.id AND (t.content->>'body' ILIKE ${p} OR t.content->>'subject' ILIKE ${p}))`);
  }
  const { rows, total } = await selectPage<any>(
    db, MESSAGE_COLUMNS, `FROM ${MESSAGE_FROM} WHERE ${where.join(' AND ')}`, `${orderBy(q, MESSAGE_SORT, { by: 'created_at' })} ${limitOffset(q)}`, params,
  );
  return { messages: await toMessages(db, rows), pagination_info: paginationInfo(total, q.page_no, q.per_page) };
}

export const SENDING_SORT = { created_at: 's.created_at', updated_at: 's.updated_at', scheduled_at: 's.scheduled_at', id: 's.id' };

/** List Message Sendings. */
export async function listMessageSendings(db: Queryable, clubId: number, service: string, messageId: number, q: ListQuery) {
  const message = await findMessageRow(db, clubId, service, messageId);
  if (!message) throw new ApiError(404, 'Message not found');
  const { rows, total } = await listSendings(db, message.id, `${orderBy(q, SENDING_SORT, { by: 'created_at' })} ${limitOffset(q)}`);
  const stats = await dispatchStats(db, rows.map((r) => r.id));
  return { sendings: rows.map((r) => serializeSending(r, stats.get(r.id)!)), pagination_info: paginationInfo(total, q.page_no, q.per_page) };
}

// ---------- channel payloads ----------

/** A channel ready to be stored. `template` is a new private copy to insert, or an existing row to keep. */
interface ResolvedChannel {
  type: ChannelType;
  template: { type: TemplateType; content: TemplateContent; wrapper_id: number | null } | { keepId: number };
  sender_type: SenderType | null;
  sender_value: string | null;
  from_email: string | null;
  from_name: string | null;
}

/** The parts of an existing channel an update may keep. */
type ExistingChannel = Pick<ChannelRow, 'type' | 'template_id' | 'sender_type' | 'sender_value' | 'from_email' | 'from_name'>;

/**
 * Checks the channels of a message payload (types unique and configured, template mode and content,
 * sender rules, defaults from the club) and resolves them. 422s are collected in `v`. References to
 * other records (templates, wrappers) come back as `lookups`, for the caller to run once the payload
 * is clean: a foreign or missing id is then a 422 at its field (DECISIONS "Counters and references").
 */
async function resolveChannels(
  db: Queryable,
  club: LoyaltyClub,
  v: Violations,
  path: Path,
  channels: ChannelInput[],
  existing: ExistingChannel[] = [],
): Promise<{ channels: ResolvedChannel[]; lookups: () => Promise<void> }> {
  const settings = clubSettings(club);

  const out: ResolvedChannel[] = [];
  const lookups: Array<() => Promise<void>> = [];
  channels.forEach((ch, i) => {
    const p = [...path, i];
    if (!channelConfigured(settings, ch.type)) v.add([...p, 'type'], 'not_configured');
    const before = existing.find((e) => e.type === ch.type);
    const r: ResolvedChannel = { type: ch.type, template: { keepId: before?.template_id ?? 0 }, sender_type: null, sender_value: null, from_email: null, from_name: null };

    // Template: inline (definition, or its alias data) or a reference to a standalone template.
    const t = ch.template;
    if (!t) {
      if (!before) v.add([...p, 'template'], 'blank');
    } else if (t.type === 'inline') {
      if (t.id !== undefined) v.add([...p, 'template', 'id'], 'not_permitted');
      if (t.definition !== undefined && t.data !== undefined) v.add([...p, 'template', 'data'], 'not_permitted');
      const key = t.definition !== undefined ? 'definition' : 'data';
      const def = t.definition ?? t.data;
      if (!def) v.add([...p, 'template', 'definition'], 'blank');
      else {
        const dp = [...p, 'template', key];
        if (!templateFitsChannel(def.type, ch.type)) v.add([...dp, 'type'], 'template_does_not_match_channel', { channel: ch.type });
        checkContent(v, [...dp, 'content'], def.type, def.content);
        r.template = { type: def.type, content: cleanContent(def.type, def.content), wrapper_id: def.wrapper_id ?? null };
        lookups.push(() => checkWrapper(db, club.id, v, [...dp, 'wrapper_id'], def.wrapper_id, def.type));
      }
    } else {
      if (t.definition !== undefined) v.add([...p, 'template', 'definition'], 'not_permitted');
      if (t.data !== undefined) v.add([...p, 'template', 'data'], 'not_permitted');
      if (t.id === undefined) v.add([...p, 'template', 'id'], 'blank');
      else {
        const id = t.id;
        lookups.push(async () => {
          const stored = await findStandaloneTemplate(db, club.id, id);
          if (!stored) {
            v.add([...p, 'template', 'id'], 'template_does_not_exist');
            return;
          }
          if (!templateFitsChannel(stored.type, ch.type)) v.add([...p, 'template', 'id'], 'template_does_not_match_channel', { channel: ch.type });
          // The stored definition is copied: later edits of the standalone template do not reach this message.
          r.template = { type: stored.type, content: stored.content, wrapper_id: stored.wrapper_id };
        });
      }
    }

    // Senders: given, else kept from the channel being updated, else the club's defaults.
    switch (ch.type) {
      case 'sms': {
        const sender = ch.sender ?? (before?.sender_type ? { type: before.sender_type, value: before.sender_value! } : settings.channels.sms.default_sender);
        if (!sender) v.add([...p, 'sender'], 'blank');
        else {
          if (ch.sender) checkSenderValue(v, [...p, 'sender', 'value'], sender.type, sender.value);
          r.sender_type = sender.type;
          r.sender_value = sender.value;
        }
        break;
      }
      case 'email': {
        r.from_email = ch.from_email?.toLowerCase() ?? before?.from_email ?? settings.channels.email.from_email;
        r.from_name = ch.from_name ?? before?.from_name ?? settings.channels.email.from_name;
        if (!r.from_email) v.add([...p, 'from_email'], 'blank');
        break;
      }
      case 'push':
        break;
    }
    out.push(r);
  });
  const types = channels.map((c) => c.type);
  if (new Set(types).size !== types.length) v.add(path, 'types_must_be_unique');
  return {
    channels: out,
    lookups: async () => {
      for (const lookup of lookups) await lookup();
    },
  };
}

async function writeChannels(db: Queryable, clubId: number, messageId: number, channels: ResolvedChannel[]): Promise<void> {
  const current = await channelsOf(db, [messageId]);
  const replacedTemplates: number[] = [];
  for (const [position, ch] of channels.entries()) {
    let templateId: number;
    if ('keepId' in ch.template) templateId = ch.template.keepId;
    else {
      templateId = (await insertTemplate(db, { clubId, standalone: false, name: null, type: ch.template.type, content: ch.template.content, wrapperId: ch.template.wrapper_id })).id;
    }
    const same = current.find((c) => c.type === ch.type);
    if (same) {
      if (same.template_id !== templateId) replacedTemplates.push(same.template_id);
      await db.query(
        `UPDATE message_channels SET position = $2, template_id = $3, sender_type = $4, sender_value = $5, from_email = $6, from_name = $7, updated_at = now()
          WHERE id = $1`,
        [same.id, position, templateId, ch.sender_type, ch.sender_value, ch.from_email, ch.from_name],
      );
    } else {
      await db.query(
        `INSERT INTO message_channels (message_id, position, type, template_id, sender_type, sender_value, from_email, from_name)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [messageId, position, ch.type, templateId, ch.sender_type, ch.sender_value, ch.from_email, ch.from_name],
      );
    }
  }
  const removed = current.filter((c) => !channels.some((ch) => ch.type === c.type));
  if (removed.length) {
    await db.query('DELETE FROM message_channels WHERE id = ANY($1::bigint[])', [removed.map((c) => c.id)]);
    replacedTemplates.push(...removed.map((c) => c.template_id));
  }
  if (replacedTemplates.length) {
    await db.query('DELETE FROM message_templates WHERE id = ANY($1::bigint[]) AND NOT standalone', [replacedTemplates]);
  }
}

// ---------- writing ----------

function checkMarketingPermit(permits: Set<string>, input: { marketing?: boolean }): void {
  if (input.marketing !== undefined && !permits.has(PERMIT_WITHOUT_CONSENTS)) {
    throw forbidden(`Not authorized: permit ${PERMIT_WITHOUT_CONSENTS} required to set marketing`);
  }
}

async function checkCampaign(db: Queryable, clubId: number, v: Violations, service: ServiceName, campaignId: number | null | undefined): Promise<void> {
  if (campaignId === undefined || campaignId === null) return;
  if (service !== 'campaigns') {
    v.add(['message', 'campaign_id'], 'is_relevant_only_for_campaign_service');
    return;
  }
  const { rows } = await db.query('SELECT 1 FROM message_campaigns WHERE id = $1 AND loyalty_club_id = $2', [campaignId, clubId]);
  if (!rows.length) v.add(['message', 'campaign_id'], 'does_not_exist');
}

export async function createMessage(db: Database, club: LoyaltyClub, permits: Set<string>, service: ServiceName, input: MessageInput) {
  checkMarketingPermit(permits, input);
  checkSendingPermits(permits, input.sending);
  return db.transaction(async (tx) => {
    const v = new Violations();
    if (input.name === undefined) v.add(['message', 'name'], 'blank');
    if (input.channels === undefined) v.add(['message', 'channels'], 'blank');
    const channelTypes = (input.channels ?? []).map((c) => c.type);
    if (input.sending) await checkSendingPayload(tx, club, v, ['message', 'sending'], input.sending, channelTypes);
    const { channels, lookups } = await resolveChannels(tx, club, v, ['message', 'channels'], input.channels ?? []);
    if (input.campaign_id != null && service !== 'campaigns') v.add(['message', 'campaign_id'], 'is_relevant_only_for_campaign_service');
    v.throwIfAny();
    // References to other records (422 at their field when missing or another club's) only for a clean payload.
    await lookups();
    await checkCampaign(tx, club.id, v, service, input.campaign_id);
    if (input.sending) await checkAudienceExists(tx, club.id, v, ['message', 'sending'], input.sending);
    v.throwIfAny();

    const { rows } = await tx.query<{ id: number }>(
      `INSERT INTO messages (loyalty_club_id, service, name, shorten_urls, track_in_shortener, campaign_id, marketing)
       VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
      [club.id, service, input.name, input.shorten_urls ?? true, input.track_in_shortener ?? false, input.campaign_id ?? null, input.marketing ?? SERVICE_INFO[service].marketing],
    );
    const id = rows[0].id;
    await writeChannels(tx, club.id, id, channels);
    if (input.sending) await insertSending(tx, club.id, id, input.sending);
    return loadMessage(tx, club.id, service, id);
  });
}

async function assertNotExecuting(db: Queryable, messageId: number, action: string): Promise<void> {
  const { rows } = await db.query<{ status: SendingStatus }>(
    `SELECT status FROM sendings WHERE message_id = $1 AND status = ANY($2::text[]) ORDER BY id LIMIT 1`,
    [messageId, [...EXECUTING]],
  );
  if (rows.length) throw notAllowed(`Message has a ${rows[0].status} sending and cannot be ${action}`);
}

export async function updateMessage(db: Database, club: LoyaltyClub, permits: Set<string>, service: ServiceName, id: number, input: Omit<MessageInput, 'sending'>) {
  checkMarketingPermit(permits, input);
  return db.transaction(async (tx) => {
    const current = await findMessageRow(tx, club.id, service, id, true);
    if (!current) throw new ApiError(404, 'Message not found');
    await assertNotExecuting(tx, id, 'updated');
    const v = new Violations();
    if (input.campaign_id != null && service !== 'campaigns') v.add(['message', 'campaign_id'], 'is_relevant_only_for_campaign_service');
    const resolved = input.channels ? await resolveChannels(tx, club, v, ['message', 'channels'], input.channels, await channelsOf(tx, [id])) : null;
    v.throwIfAny();
    await resolved?.lookups();
    const channels = resolved?.channels ?? null;
    await checkCampaign(tx, club.id, v, service, input.campaign_id);
    v.throwIfAny();
    await tx.query(
      `UPDATE messages SET name = $2, shorten_urls = $3, track_in_shortener = $4, campaign_id = $5, marketing = $6, updated_at = now() WHERE id = $1`,
      [
        id,
        input.name ?? current.name,
        input.shorten_urls ?? current.shorten_urls,
        input.track_in_shortener ?? current.track_in_shortener,
        input.campaign_id === undefined ? current.campaign_id : input.campaign_id,
        input.marketing ?? current.marketing,
      ],
    );
    if (channels) await writeChannels(tx, club.id, id, channels);
    return loadMessage(tx, club.id, service, id);
  });
}

/** Duplicate: name + " (copy)", flags, campaign and channels with copies of their templates; no sendings. */
export async function duplicateMessage(db: Database, club: LoyaltyClub, service: ServiceName, id: number) {
  return db.transaction(async (tx) => {
    const current = await findMessageRow(tx, club.id, service, id);
    if (!current) throw new ApiError(404, 'Message not found');
    const { rows } = await tx.query<{ id: number }>(
      `INSERT INTO messages (loyalty_club_id, service, name, shorten_urls, track_in_shortener, campaign_id, marketing)
       SELECT loyalty_club_id, service, left(name || ' (copy)', 255), shorten_urls, track_in_shortener, campaign_id, marketing
         FROM messages WHERE id = $1 RETURNING id`,
      [id],
    );
    const copyId = rows[0].id;
    const channels = await channelsOf(tx, [id]);
    const templates = await findTemplatesByIds(tx, channels.map((c) => c.template_id));
    await writeChannels(
      tx,
      club.id,
      copyId,
      channels.map((c) => {
        const t = templates.get(c.template_id)!;
        return { type: c.type, template: { type: t.type, content: t.content, wrapper_id: t.wrapper_id }, sender_type: c.sender_type, sender_value: c.sender_value, from_email: c.from_email, from_name: c.from_name };
      }),
    );
    return loadMessage(tx, club.id, service, copyId);
  });
}

/** Delete: refused while a sending executes; draft/scheduled/finished sendings go with the message. */
export async function deleteMessage(db: Database, club: LoyaltyClub, service: ServiceName, id: number) {
  return db.transaction(async (tx) => {
    const current = await findMessageRow(tx, club.id, service, id, true);
    if (!current) throw new ApiError(404, 'Message not found');
    await assertNotExecuting(tx, id, 'deleted');
    const message = await loadMessage(tx, club.id, service, id);
    const templateIds = (await channelsOf(tx, [id])).map((c) => c.template_id);
    await tx.query('DELETE FROM messages WHERE id = $1', [id]);
    if (templateIds.length) await tx.query('DELETE FROM message_templates WHERE id = ANY($1::bigint[]) AND NOT standalone', [templateIds]);
    return message;
  });
}

/** Create Sending for an existing message. */
export async function createSendingFor(db: Database, club: LoyaltyClub, permits: Set<string>, service: ServiceName, messageId: number, input: import('./schemas.ts').SendingInput) {
  checkSendingPermits(permits, input);
  return db.transaction(async (tx) => {
    // Locked so that a concurrent Delete Message waits instead of breaking the insert.
    const message = await findMessageRow(tx, club.id, service, messageId, true);
    if (!message) throw new ApiError(404, 'Message not found');
    const v = new Violations();
    await checkSendingPayload(tx, club, v, ['sending'], input, await messageChannelTypes(tx, messageId));
    v.throwIfAny();
    await checkAudienceExists(tx, club.id, v, ['sending'], input);
    v.throwIfAny();
    return insertSending(tx, club.id, messageId, input);
  });
}
