// The edge rules every request passes before any domain code sees it, whatever its route's schema:
// - text PostgreSQL cannot store (NUL) or that is not Unicode (a lone UTF-16 surrogate) is refused,
//   one rule for text and jsonb: 422 `invalid_format` at the field, 404 when it is in the path;
// - `__proto__`, `constructor` and `prototype` are never keys of our data: 422 `not_permitted`;
// - an empty body sent as `application/json` is no body (many clients send the header on every call),
//   while a non-empty body that is not JSON stays a 400.
// The findings join the schema's own 422 tree (see errors.ts), so one answer lists every problem.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError, Violations } from './errors.ts';

/** Keys that reach `Object.prototype` (or a constructor) when used to index or merge plain objects. */
export const PROTOTYPE_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** The one text rule: no NUL, no unpaired surrogate. */
export function isStorableText(s: string): boolean {
  return !UNSTORABLE.test(s);
}
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

const MAX_DEPTH = 64;

/** Walks a decoded value and records every prototype key and unstorable string at its path. */
export function checkInput(value: unknown, path: Array<string | number>, v: Violations, depth = 0): Violations {
  if (typeof value === 'string') {
    if (!isStorableText(value)) v.add(path, 'invalid_format', { format: 'text' });
  } else if (Array.isArray(value)) {
    if (depth < MAX_DEPTH) value.forEach((item, i) => checkInput(item, [...path, i], v, depth + 1));
  } else if (value !== null && typeof value === 'object' && !Buffer.isBuffer(value) && depth < MAX_DEPTH) {
    for (const key of Object.keys(value)) {
      if (PROTOTYPE_KEYS.has(key)) v.add([...path, key], 'not_permitted');
      else if (!isStorableText(key)) v.add([...path, key], 'invalid_format', { format: 'text' });
      else checkInput((value as Record<string, unknown>)[key], [...path, key], v, depth + 1);
    }
  }
  return v;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** What the edge rules found in the query and body; reported with the schema's own errors. */
    inputViolations: Violations | null;
  }
  interface FastifyContextConfig {
    /**
     * Body paths (top-level keys) whose content the route checks itself, item by item, because one
     * bad item must not refuse the request (members imports report the row instead).
     */
    checksOwnItems?: string[];
  }
}

export function installInputGuard(app: FastifyInstance): void {
  app.decorateRequest('inputViolations', null);

  // JSON bodies: the plain parser (it never assigns through `__proto__`), empty meaning none.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    const text = body as string;
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch {
      done(Object.assign(new SyntaxError('Unparsable JSON body'), { statusCode: 400 }), undefined);
    }
  });

  app.addHook('preValidation', async (request) => {
    const params = request.params as Record<string, unknown> | undefined;
    for (const value of Object.values(params ?? {})) {
      if (typeof value === 'string' && !isStorableText(value)) throw new ApiError(404, 'Not found');
    }
    const v = new Violations();
    checkInput(request.query, [], v);
    checkInput(bodyToCheck(request), [], v);
    if (!v.empty) request.inputViolations = v;
  });

  // Reached only when the schema accepted the request: the edge findings alone make the 422.
  app.addHook('preHandler', async (request) => {
    request.inputViolations?.throwIfAny();
  });
}

function bodyToCheck(request: FastifyRequest): unknown {
  const own = request.routeOptions.config?.checksOwnItems;
  const body = request.body;
  if (!own || body === null || typeof body !== 'object' || Array.isArray(body)) return body;
  // Prototype keys at the top are still refused; the listed keys' content is the route's to check.
  return Object.fromEntries(Object.entries(body).map(([k, val]) => [k, own.includes(k) ? null : val]));
}
