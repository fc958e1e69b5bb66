// Short links: random base62 codes stored server-side, and the rewriting of rendered content.
// One code per (sending, URL); one per (dispatch, URL) when the message tracks recipients.
import { randomBytes } from 'node:crypto';
import type { Queryable } from '../db/connection.ts';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
/** 62^8 ≈ 2·10^14 codes: collisions are rare, and retried when they happen. */
export const CODE_LENGTH = 8;
/** What a code may look like in a request path; anything else is not a short link. */
export const CODE_PATTERN = '^[0-9A-Za-z]{7,32}$';

export function newCode(length = CODE_LENGTH): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      // 248 = 4·62: rejecting the top bytes keeps every character equally likely.
      if (byte < 248 && out.length < length) out += BASE62[byte % 62];
    }
  }
  return out;
}

// A URL runs until whitespace, a quote, or a character that cannot appear unescaped in one.
const URL_RE = /https?:\/\/[^\s<>"'`{}|\\^[\]]+/gi;

/** Strips punctuation that ends a sentence rather than the URL ("see https://x.no/a.", "(https://x.no)"). */
function trimUrl(url: string): string {
  let u = url;
  for (;;) {
    const last = u[u.length - 1];
    if ('.,;:!?'.includes(last)) u = u.slice(0, -1);
    else if (last === ')' && (u.match(/\(/g)?.length ?? 0) < (u.match(/\)/g)?.length ?? 0)) u = u.slice(0, -1);
    else return u;
  }
}

/** The http(s) URLs of a text, as written (HTML entities still encoded). */
export function findUrls(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(URL_RE)) out.push(trimUrl(m[0]));
  return out;
}

/** The address a URL written in HTML stands for (`&amp;` in an attribute is `&`). */
export function targetOf(written: string, html: boolean): string {
  return html ? written.replace(/&amp;/gi, '&') : written;
}

/** Replaces every http(s) URL of `text` for which `codeOf` knows a code by `<base>/<code>`. */
export function rewriteUrls(text: string, html: boolean, base: string, codeOf: (target: string) => string | undefined): string {
  const prefix = base.replace(/\/+$/, '') + '/';
  return text.replace(URL_RE, (match) => {
    const url = trimUrl(match);
    if (url.startsWith(prefix)) return match; // already a short link
    const code = codeOf(targetOf(url, html));
    return code ? prefix + code + match.slice(url.length) : match;
  });
}

export interface LinkRequest {
  /** Set when tracked: the link then belongs to this dispatch only. */
  dispatchId: number | null;
  url: string;
}

export const linkKey = (dispatchId: number | null, url: string) => `${dispatchId ?? ''}\n${url}`;

/**
 * Gets or creates the codes of a batch, set-based: one insert for all missing links, one select
 * for what already existed (a retried batch, or another worker that was first).
 * Returns linkKey(dispatchId, url) → code.
 */
export class LinkStore {
  // Per-sending links are asked for by every batch of a sending: remembered in process.
  private readonly cache = new Map<string, string>();
  private static readonly CACHE_MAX = 50_000;

  constructor(private readonly db: Queryable) {}

  async codesFor(clubId: number, sendingId: number, requests: LinkRequest[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const missingShared = new Set<string>();
    const missingTracked = new Map<string, LinkRequest>();
    for (const r of requests) {
      const key = linkKey(r.dispatchId, r.url);
      if (out.has(key)) continue;
      if (r.dispatchId === null) {
        const cached = this.cache.get(`${sendingId}\n${r.url}`);
        if (cached) out.set(key, cached);
        else missingShared.add(r.url);
      } else missingTracked.set(key, r);
    }
    if (missingShared.size) {
      const urls = [...missingShared];
      for (let attempt = 0; attempt < 5 && urls.length; attempt++) {
        await this.db.query(
          `INSERT INTO short_links (code, loyalty_club_id, sending_id, target_url)
           SELECT code, $1, $2, url FROM unnest($3::text[], $4::text[]) AS t(code, url)
           ON CONFLICT DO NOTHING`,
          [clubId, sendingId, urls.map(() => newCode()), urls],
        );
        // Whoever inserted it, the stored row is the link; a url still absent lost a code collision.
        const { rows } = await this.db.query<{ code: string; target_url: string }>(
          `SELECT code, target_url FROM short_links
            WHERE sending_id = $1 AND dispatch_id IS NULL AND target_url = ANY($2::text[])`,
          [sendingId, urls],
        );
        for (const row of rows) {
          out.set(linkKey(null, row.target_url), row.code);
          if (this.cache.size >= LinkStore.CACHE_MAX) this.cache.clear();
          this.cache.set(`${sendingId}\n${row.target_url}`, row.code);
        }
        const found = new Set(rows.map((r) => r.target_url));
        urls.splice(0, urls.length, ...urls.filter((u) => !found.has(u)));
      }
      if (urls.length) throw new Error(`shortener: no code for ${urls.length} URL(s) after retries`);
    }
    if (missingTracked.size) {
      let pending = [...missingTracked.values()];
      for (let attempt = 0; attempt < 5 && pending.length; attempt++) {
        await this.db.query(
          `INSERT INTO short_links (code, loyalty_club_id, sending_id, dispatch_id, target_url)
           SELECT code, $1, $2, dispatch_id, url FROM unnest($3::text[], $4::bigint[], $5::text[]) AS t(code, dispatch_id, url)
           ON CONFLICT DO NOTHING`,
          [clubId, sendingId, pending.map(() => newCode()), pending.map((r) => r.dispatchId), pending.map((r) => r.url)],
        );
        const { rows } = await this.db.query<{ code: string; dispatch_id: number; target_url: string }>(
          `SELECT code, dispatch_id, target_url FROM short_links WHERE dispatch_id = ANY($1::bigint[])`,
          [[...new Set(pending.map((r) => r.dispatchId))]],
        );
        for (const row of rows) out.set(linkKey(row.dispatch_id, row.target_url), row.code);
        pending = pending.filter((r) => !out.has(linkKey(r.dispatchId, r.url)));
      }
      if (pending.length) throw new Error(`shortener: no code for ${pending.length} tracked URL(s) after retries`);
    }
    return out;
  }
}
