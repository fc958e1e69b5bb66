// The one Liquid engine of Hei: templates are checked with it when saved (messaging API) and
// rendered with it when dispatches are built (delivery engine). Sandbox: no file system, no
// includes/layouts, own properties only, bounded parse/render time, memory and output size.
import { Liquid, TagToken, Tokenizer, type Template } from 'liquidjs';

/** Longest template source accepted (characters). */
export const MAX_TEMPLATE_LENGTH = 200_000;
/**
 * Deepest nesting of block tags (`if`, `for`, `case`, …). LiquidJS parses and renders nested blocks
 * recursively, so thousands of levels exhaust the stack; no real template comes near this.
 */
export const MAX_NESTING_DEPTH = 50;
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
/** `ParseResult.error` of a source nested deeper than `MAX_NESTING_DEPTH`. */
export const TOO_DEEPLY_NESTED = 'too_deeply_nested';

/** Parses a template source; a syntax error (or a source over the limits) comes back as a value. */
export function parseTemplate(source: string): ParseResult {
  if (source.length > MAX_TEMPLATE_LENGTH) return { ok: false, error: 'too_long' };
  if (nestingDepth(source) > MAX_NESTING_DEPTH) return { ok: false, error: TOO_DEEPLY_NESTED };
  try {
    return { ok: true, templates: liquid.parse(source) };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message.split('\n')[0] : String(err) };
  }
}

const BLOCKS = new Set(['if', 'unless', 'for', 'case', 'capture', 'tablerow', 'comment', 'raw']);

/** The deepest block nesting of a source, counted on LiquidJS's own tokens (0 when it does not tokenize). */
function nestingDepth(source: string): number {
  let depth = 0;
  let deepest = 0;
  const visit = (name: string) => {
    if (BLOCKS.has(name)) deepest = Math.max(deepest, ++depth);
    else if (name.startsWith('end') && BLOCKS.has(name.slice(3))) depth = Math.max(0, depth - 1);
  };
  try {
    for (const token of new Tokenizer(source).readTopLevelTokens(liquid.options)) {
      if (!(token instanceof TagToken)) continue;
      if (token.name === 'liquid') for (const line of new Tokenizer(token.args).readLiquidTagTokens(liquid.options)) visit(line.name);
      else visit(token.name);
    }
  } catch {
    return 0; // the parser reports the syntax error
  }
  return deepest;
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
