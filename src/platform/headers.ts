// Global request headers: which are required, their grammar, and how they are parsed.

export type CustomerSelector =
  | { kind: 'ids'; ids: number[] }
  | { kind: 'all' }
  | { kind: 'filter'; filters: Record<string, string> };

const IETF_TAG = /^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$/;
const PRODUCT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const SLUG = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

export const isValidProductName = (v: string) => PRODUCT.test(v);
export const isValidLocale = (v: string) => IETF_TAG.test(v);
export const isValidSlug = (v: string) => SLUG.test(v) && v.length <= 64;
/** Free-form, but printable and bounded. */
export const isValidUserAgent = (v: string) => v.length <= 512 && !/[\x00-\x1f\x7f]/.test(v);

/** `X-Customer`: `1000941`, `1000941_1000942`, `id=1_2`, `all=all`, `chain=Cats;country=PL`. */
export function parseCustomer(value: string): CustomerSelector | null {
  const v = value.trim();
  if (v === 'all=all') return { kind: 'all' };
  const ids = /^(?:id=)?(\d+(?:_\d+)*)$/.exec(v);
  if (ids) return { kind: 'ids', ids: ids[1].split('_').map(Number) };
  const filters: Record<string, string> = {};
  for (const part of v.split(';')) {
    const m = /^([a-z_]+)=([^;=]+)$/.exec(part);
    if (!m || m[1] === 'id' || m[1] === 'all') return null;
    filters[m[1]] = m[2];
  }
  return Object.keys(filters).length ? { kind: 'filter', filters } : null;
}

/**
 * `X-Locale` against the club's languages: exact tag, else its base language, else the club's
 * default. Matching ignores case (`es-es` finds `es-ES`).
 */
export function resolveLocale(requested: string | undefined, languages: string[], fallback: string): string {
  if (!requested) return fallback;
  const lower = requested.toLowerCase();
  const exact = languages.find((l) => l.toLowerCase() === lower);
  if (exact) return exact;
  const base = lower.split('-')[0];
  return languages.find((l) => l.toLowerCase() === base) ?? fallback;
}
