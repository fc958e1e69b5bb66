// The one Liquid engine of Hei: templates are checked with it when saved (messaging API) and
// rendered with it when dispatches are built (delivery engine). Sandbox: no file system, no
// includes/layouts, own properties only, bounded parse/render time, memory and output size.
import { Liquid, type Template } from 'liquidjs';

/** Longest template source accepted (characters). */
export const MAX_TEMPLATE_LENGTH = 200_000;
/** Longest rendered output (characters); longer output is an error, never truncated silently. */
export const MAX_OUTPUT_LENGTH = 500_000;

export const liquid = new Liquid({
  // An empty in-memory mapping: `include`, `render` and `layout` find nothing, and the
  // file system is never touched.
  templates: {},
  relativeReference: false,
  dynamicPartials: false,
  ownPropertyOnly: true,
  strictFilters: true, // an unknown filter is a syntax error at save time
  strictVariables: false, // a missing merge property renders as an empty string (DECISIONS)
  outputEscape: undefined,
  parseLimit: MAX_TEMPLATE_LENGTH,
  renderLimit: 1_000, // milliseconds per render
  memoryLimit: 10_000_000, // approximate allocations (string length, array size) per render
  cache: false,
});

export type ParseResult = { ok: true; templates: Template[] } | { ok: false; error: string };

/** Parses a template source; a syntax error (or a source over the limits) comes back as a value. */
export function parseTemplate(source: string): ParseResult {
  if (source.length > MAX_TEMPLATE_LENGTH) return { ok: false, error: 'too_long' };
  try {
    return { ok: true, templates: liquid.parse(source) };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message.split('\n')[0] : String(err) };
  }
}

export class RenderError extends Error {}

/** Renders a parsed template with merge properties; bounded in time, memory and output size. */
export async function renderTemplate(templates: Template[] | string, properties: Record<string, unknown>): Promise<string> {
  const parsed = typeof templates === 'string' ? liquid.parse(templates) : templates;
  let out: string;
  try {
    out = String(await liquid.render(parsed, properties));
  } catch (err) {
    throw new RenderError(err instanceof Error ? err.message.split('\n')[0] : String(err));
  }
  if (out.length > MAX_OUTPUT_LENGTH) throw new RenderError(`rendered output longer than ${MAX_OUTPUT_LENGTH} characters`);
  return out;
}
