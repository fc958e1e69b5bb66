// Unsubscribing from marketing messages: every member dispatch carries an `unsubscribe_url`
// (merge property, and List-Unsubscribe for marketing e-mail). The URL names the dispatch and is
// signed, so it cannot be forged or enumerated. GET shows a confirmation page (mail scanners
// follow links: a GET never changes anything); POST — the RFC 8058 one-click request a mail
// client sends, or the page's button — withdraws the member's marketing consent for that channel.
import { stopUnsubscribedDispatches } from '../messaging/personal-data.ts';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import type { Queryable } from '../db/connection.ts';
import { api } from '../platform/context.ts';
import { ApiError, ValidationFailed } from '../platform/errors.ts';
import type { Api, Services } from '../platform/services.ts';
import { updateMember } from '../members/members.ts';
import { loadSecretKey } from '../transports/secrets.ts';

const signingKey = (secret: Buffer) => createHmac('sha256', secret).update('hei unsubscribe v1').digest();

export class UnsubscribeLinks {
  private readonly key: Buffer;

  constructor(
    private readonly baseUrl: string,
    secret: Buffer = loadSecretKey(),
  ) {
    this.key = signingKey(secret);
  }

  private signature(dispatchId: number): string {
    return createHmac('sha256', this.key).update(String(dispatchId)).digest('base64url').slice(0, 22);
  }

  token(dispatchId: number): string {
    return `${dispatchId.toString(36)}.${this.signature(dispatchId)}`;
  }

  url(dispatchId: number): string {
    return `${this.baseUrl.replace(/\/$/, '')}/v1/unsubscribe/${this.token(dispatchId)}`;
  }

  /** The dispatch a token names, or null when it is malformed or not ours. */
  read(token: string): number | null {
    const m = /^([0-9a-z]{1,13})\.([A-Za-z0-9_-]{22})$/.exec(token);
    if (!m) return null;
    const id = parseInt(m[1], 36);
    if (!Number.isSafeInteger(id)) return null;
    const expected = Buffer.from(this.signature(id));
    const given = Buffer.from(m[2]);
    return given.length === expected.length && timingSafeEqual(given, expected) ? id : null;
  }
}

/**
 * RFC 8058 allows one-click unsubscribe only with an https URI, so with a plain-http public base
 * marketing e-mail goes out without `List-Unsubscribe-Post`: worth a warning at start when some
 * club sends e-mail.
 */
export async function oneClickWarning(db: Queryable, publicBaseUrl: string): Promise<string | null> {
  if (publicBaseUrl.startsWith('https://')) return null;
  const { rows } = await db.query(`SELECT 1 FROM transport_configs WHERE channel = 'email' LIMIT 1`);
  if (!rows.length) return null;
  return `PUBLIC_BASE_URL (${publicBaseUrl}) is not https: marketing e-mail is sent without one-click unsubscribe (RFC 8058 needs https)`;
}

const page = (title: string, body: string) =>
  `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${title}</title></head>` +
  `<body style="font-family:sans-serif;max-width:32em;margin:3em auto;padding:0 1em"><h1>${title}</h1>${body}</body></html>`;

const CHANNEL_NAMES: Record<string, string> = { sms: 'text messages', email: 'e-mails', push: 'push notifications' };

export function unsubscribeRoutes(app: Api, { db, config }: Services): void {
  const links = new UnsubscribeLinks(config.publicBaseUrl);
  const Params = Type.Object({ token: Type.String({ maxLength: 64 }) });
  const meta = api({ permit: null, auth: 'None', context: 'Global' });

  async function dispatchOf(token: string) {
    const id = links.read(token);
    const { rows } = id === null ? { rows: [] } : await db.query<{ loyalty_club_id: number; member_id: number | null; channel: string | null }>(
      'SELECT loyalty_club_id, member_id, channel FROM dispatches WHERE id = $1',
      [id],
    );
    const d = rows[0];
    if (!d || d.member_id === null || !d.channel) throw new ApiError(404, 'Unsubscribe link not found');
    return d as { loyalty_club_id: number; member_id: number; channel: string };
  }

  app.register(async (scope) => {
    // Mail clients post `List-Unsubscribe=One-Click` as a form (RFC 8058); the body says nothing more.
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, _body, done) => done(null, {}));

    scope.get('/v1/unsubscribe/:token', {
      config: meta,
      schema: { summary: 'Unsubscribe page of a message (confirmation form)', tags: ['Unsubscribe'], params: Params },
      handler: async (request, reply) => {
        const d = await dispatchOf((request.params as { token: string }).token);
        reply.type('text/html; charset=utf-8').header('cache-control', 'no-store');
        return page(
          'Unsubscribe',
          `<p>Stop receiving marketing ${CHANNEL_NAMES[d.channel] ?? 'messages'} from us?</p>` +
            `<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Unsubscribe</button></form>`,
        );
      },
    });

    scope.post('/v1/unsubscribe/:token', {
      config: meta,
      schema: { summary: 'Unsubscribe (RFC 8058 one-click): withdraws the marketing consent of the channel', tags: ['Unsubscribe'], params: Params },
      handler: async (request, reply) => {
        const d = await dispatchOf((request.params as { token: string }).token);
        try {
          await updateMember(db, d.loyalty_club_id, d.member_id, { consents: { [`${d.channel}_marketing`]: false }, validate_partially: true }, { product: 'unsubscribe' });
          // Nothing more of that kind goes out to this member (DECISIONS "Personal data").
          await stopUnsubscribedDispatches(db, d.loyalty_club_id, d.member_id, d.channel);
        } catch (err) {
          // A club whose schema has no such consent, or a member deleted since: nothing to withdraw.
          if (!(err instanceof ValidationFailed) && !(err instanceof ApiError && err.status === 404)) throw err;
        }
        reply.type('text/html; charset=utf-8').header('cache-control', 'no-store');
        return page('Unsubscribed', `<p>You will no longer receive marketing ${CHANNEL_NAMES[d.channel] ?? 'messages'} from us.</p>`);
      },
    });
  });
}
