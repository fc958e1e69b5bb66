// `GET /<code>`: the public side of the shortener. Redirects only to a stored target; an unknown
// code is a 404, never a redirect built from the request.
import { createHash } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { api } from '../platform/context.ts';
import { ApiError } from '../platform/errors.ts';
import type { Api, Services } from '../platform/services.ts';
import { CODE_PATTERN } from './links.ts';

// Mail-security scanners, link-preview fetchers and scripted clients. They follow links
// without a person behind them: their visits are kept but not counted as clicks.
const BOT_AGENTS =
  /bot\b|bot\/|crawler|spider|slurp|facebookexternalhit|facebot|embedly|preview|whatsapp|telegram|skypeuripreview|slack|discord|linkedin|pinterest|proofpoint|mimecast|barracuda|symantec|forcepoint|trendmicro|fireeye|safelinks|microsoft office|ms-office|headless|python-requests|go-http-client|okhttp|curl\/|wget\//i;

const CODE_RE = new RegExp(CODE_PATTERN);

export function isBotRequest(request: Pick<FastifyRequest, 'method' | 'headers'>): boolean {
  if (request.method === 'HEAD') return true;
  const h = request.headers;
  for (const name of ['purpose', 'sec-purpose', 'x-purpose', 'x-moz']) {
    const v = h[name];
    if (typeof v === 'string' && /prefetch|preview/i.test(v)) return true;
  }
  const ua = h['user-agent'];
  if (!ua) return true;
  return BOT_AGENTS.test(ua);
}

export function shortenerRoutes(app: Api, { db }: Services): void {
  // One path segment only: every API path has more, and the static single-segment routes
  // (`/health`, `/metrics`, `/docs` …) always win over a parameter in the router. Anything that
  // is not a code answers the app's own 404.
  app.get('/:code', {
    config: api({ permit: null, auth: 'None', context: 'Global' }),
    schema: {
      summary: 'Follow a short link',
      description: `Redirects (302) to the link's stored target and records the visit. \`code\` matches ${CODE_PATTERN}.`,
      tags: ['Shortener'],
      params: Type.Object({ code: Type.String() }),
      response: { 404: Type.Object({ error: Type.String() }) },
    },
    handler: async (request, reply) => {
      const { code } = request.params as { code: string };
      if (!CODE_RE.test(code)) throw new ApiError(404, 'Not found');
      const { rows } = await db.query<{ id: number; sending_id: number | null; dispatch_id: number | null; target_url: string }>(
        `SELECT id, sending_id, dispatch_id, target_url FROM short_links WHERE code = $1`,
        [code],
      );
      const link = rows[0];
      if (!link) throw new ApiError(404, 'Link not found');
      const bot = isBotRequest(request);
      const ua = typeof request.headers['user-agent'] === 'string' ? request.headers['user-agent'].slice(0, 512) : null;
      const visitor = link.dispatch_id !== null ? `d:${link.dispatch_id}` : 'v:' + createHash('sha256').update(`${request.ip}|${ua ?? ''}`).digest('hex').slice(0, 24);
      // The click and the sending's counters in one statement; a visitor's first human click
      // on the sending also counts as unique. (The subquery's snapshot does not see this insert.)
      await db.query(
        `WITH click AS (
           INSERT INTO short_link_clicks (link_id, sending_id, dispatch_id, user_agent, bot, visitor)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING sending_id, visitor, bot
         )
         UPDATE sendings s
            SET clicks_count = s.clicks_count + 1,
                unique_clicks_count = s.unique_clicks_count + CASE WHEN EXISTS (
                  SELECT 1 FROM short_link_clicks c
                   WHERE c.sending_id = click.sending_id AND c.visitor = click.visitor AND NOT c.bot) THEN 0 ELSE 1 END
           FROM click
          WHERE s.id = click.sending_id AND NOT click.bot`,
        [link.id, link.sending_id, link.dispatch_id, ua, bot, visitor],
      );
      reply.header('cache-control', 'no-store');
      reply.header('referrer-policy', 'no-referrer');
      return reply.redirect(link.target_url, 302);
    },
  });
}
