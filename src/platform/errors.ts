// The MPC error shapes: `{"error": "…"}` for handled errors and the recursive 422 tree.
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { DatabaseUnavailable } from '../db/connection.ts';

/** What a 503 for an unreachable database tells the client to wait (seconds). */
const DATABASE_RETRY_AFTER_SECONDS = 5;

/**
 * One leaf of the 422 tree. Collected as `{error, options?}`; `completeLeaves` gives every leaf
 * its final shape `{error, options, value, message}` (DECISIONS "Errors").
 */
export interface ParameterError {
  error: string;
  options?: Record<string, unknown>;
  value?: unknown;
  message?: string;
}
export type ErrorsTree = { [key: string]: ParameterError[] | ErrorsTree };

/** English text of the keys; an unlisted key reads as its words ("template does not exist"). */
const MESSAGES: Record<string, (o: Record<string, any>) => string> = {
  blank: () => "can't be blank",
  presence: () => 'must be present',
  not_permitted: () => 'is not permitted',
  inclusion: (o) => `is not included in the list${Array.isArray(o.in) ? `: ${o.in.join(', ')}` : ''}`,
  invalid: () => 'is invalid',
  invalid_format: (o) => `has an invalid format${o.format ? ` (${o.format})` : ''}`,
  invalid_msisdn: () => 'is not a valid MSISDN (E.164 digits, no + or leading zeros)',
  invalid_email: () => 'is not a valid e-mail address',
  invalid_iso_8601_time: () => 'is not an ISO 8601 time',
  not_an_integer: () => 'must be an integer',
  not_a_number: () => 'must be a number',
  must_be_an_object: () => 'must be an object',
  must_be_an_array: () => 'must be an array',
  too_short: (o) => `is too short (minimum is ${o.min_length ?? o.number})`,
  too_long: (o) => `is too long${o.max_length !== undefined ? ` (maximum is ${o.max_length})` : ''}`,
  greater_than: (o) => `must be greater than ${o.number}`,
  greater_or_equal_to: (o) => `must be greater than or equal to ${o.number}`,
  less_than: (o) => `must be less than ${o.number}`,
  less_or_equal_to: (o) => `must be less than or equal to ${o.number}`,
  taken: () => 'has already been taken',
  liquid_syntax_error: (o) => `is not valid Liquid: ${o.syntax_error}`,
  liquid_tag_not_allowed: (o) => `uses the Liquid tag ${o.tag}, which templates may not use`,
  attribute_cannot_be_present_with: (o) => `cannot be present with ${o.with}`,
};

/** Submitted values are echoed back shortened, and never for fields that hold a secret. */
const MAX_VALUE_LENGTH = 200;
const SECRET_KEY = /password|secret/i;

function shortValue(v: unknown): unknown {
  if (v === undefined) return null;
  if (typeof v === 'string') return v.length > MAX_VALUE_LENGTH ? `${v.slice(0, MAX_VALUE_LENGTH)}…` : v;
  if (v !== null && typeof v === 'object') {
    const text = JSON.stringify(v);
    return text.length > MAX_VALUE_LENGTH ? `${text.slice(0, MAX_VALUE_LENGTH)}…` : v;
  }
  return v;
}

/** The value at a payload path, own properties only; undefined when absent. */
function valueAt(source: unknown, path: readonly string[]): unknown {
  let v = source;
  for (const key of path) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, key)) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

/** The one place a 422 leaf gets its shape: `{error, options, value, message}`. */
export function leaf(error: string, options: Record<string, unknown> | undefined, value: unknown, secret = false): Required<ParameterError> {
  const o = options ?? {};
  const message = MESSAGES[error]?.(o) ?? error.replace(/_/g, ' ');
  return { error, options: o, value: secret ? null : shortValue(value), message };
}

/**
 * Completes every leaf of a tree with the submitted value found at its path in `source` (the
 * body, query or import item the tree describes); `base` leaves carry the object itself.
 */
export function completeLeaves(tree: ErrorsTree, source: unknown, path: string[] = []): ErrorsTree {
  const out: ErrorsTree = {};
  for (const [key, node] of Object.entries(tree)) {
    const at = key === 'base' && Array.isArray(node) ? path : [...path, key];
    const value = Array.isArray(node)
      ? node.map((e) => leaf(e.error, e.options, e.value !== undefined ? e.value : valueAt(source, at), at.some((k) => SECRET_KEY.test(k))))
      : completeLeaves(node, source, at);
    // Keys come from requests: `__proto__` must stay a data key, never set the prototype.
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** A handled failure: becomes `{"error": message}` with its status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export const notFound = (what = 'Resource') => new ApiError(404, `${what} not found`);
export const forbidden = (message: string) => new ApiError(403, message);
export const notAllowed = (message: string) => new ApiError(405, message);

/** A 422 with the standard tree. Build it with `Violations`. */
export class ValidationFailed extends Error {
  constructor(readonly details: ErrorsTree) {
    super('Invalid parameters');
  }
}

/** MPC's generic keys for a value of the wrong JSON type (DECISIONS "Errors"). */
const TYPE_KEYS: Record<string, string> = { integer: 'not_an_integer', number: 'not_a_number', object: 'must_be_an_object', array: 'must_be_an_array' };

/**
 * Collects parameter errors at payload paths, e.g. `['message', 'channels', 1, 'type']`. Path keys come
 * from requests (`__proto__`, `constructor`, …), so the tree is built on prototype-less objects and
 * handed out as plain objects whose keys are own data properties.
 */
export class Violations {
  private readonly root: Node = newNode();

  add(path: ReadonlyArray<string | number>, error: string, options?: Record<string, unknown>): this {
    // A type mismatch found by a handler reads like one found by the schema: MPC's key.
    const typeKey = error === 'invalid' && typeof options?.format === 'string' ? TYPE_KEYS[options.format] : undefined;
    if (typeKey) {
      error = typeKey;
      options = undefined;
    }
    const keys = path.length === 0 ? ['base'] : path.map(String);
    let node: Node = this.root;
    for (const key of keys.slice(0, -1)) {
      const next = node[key];
      if (next === undefined) node = node[key] = newNode();
      // A node that already holds its own errors keeps them under `base` when children arrive.
      else if (Array.isArray(next)) node = node[key] = Object.assign(newNode(), { base: next });
      else node = next;
    }
    const leafKey = keys[keys.length - 1];
    const existing = node[leafKey];
    const entry: ParameterError = options ? { error, options } : { error };
    if (Array.isArray(existing)) {
      if (!existing.some((e) => e.error === error)) existing.push(entry);
    } else if (existing === undefined) node[leafKey] = [entry];
    else {
      // An object-level error on a node that already has children goes to its `base`.
      const base = (existing.base as ParameterError[] | undefined) ?? [];
      base.push(entry);
      existing.base = base;
    }
    return this;
  }

  /** Violations holding a tree handed out earlier (e.g. stored as JSON). */
  static fromTree(tree: ErrorsTree): Violations {
    const v = new Violations();
    const walk = (node: ErrorsTree, path: string[]) => {
      for (const k of Object.keys(node)) {
        const val = node[k];
        if (Array.isArray(val)) for (const e of val) v.add([...path, k], e.error, e.options);
        else walk(val, [...path, k]);
      }
    };
    walk(tree, []);
    return v;
  }

  merge(prefix: ReadonlyArray<string | number>, other: Violations): this {
    const walk = (tree: Node, path: Array<string | number>) => {
      for (const k of Object.keys(tree)) {
        const v = tree[k];
        if (Array.isArray(v)) for (const e of v) this.add([...path, k], e.error, e.options);
        else walk(v, [...path, k]);
      }
    };
    walk(other.root, [...prefix]);
    return this;
  }

  /** The tree as plain objects (for JSON and comparison); every key, `__proto__` included, is data. */
  get tree(): ErrorsTree {
    return toPlain(this.root);
  }

  /** An empty value is just `blank`: its format or length errors say nothing more. */
  collapseBlank(): this {
    const walk = (node: Node) => {
      for (const key of Object.keys(node)) {
        const child = node[key];
        if (!Array.isArray(child)) walk(child);
        else if (child.length > 1 && child.some((e) => e.error === 'blank')) node[key] = [{ error: 'blank' }];
      }
    };
    walk(this.root);
    return this;
  }

  get empty(): boolean {
    return Object.keys(this.root).length === 0;
  }

  throwIfAny(): void {
    if (!this.empty) throw new ValidationFailed(this.tree);
  }
}

type Node = { [key: string]: ParameterError[] | Node };
const newNode = (): Node => Object.create(null);

function toPlain(node: Node): ErrorsTree {
  const out: ErrorsTree = {};
  for (const key of Object.keys(node)) {
    const v = node[key];
    Object.defineProperty(out, key, { value: Array.isArray(v) ? v : toPlain(v), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

interface AjvError {
  keyword: string;
  instancePath: string;
  params: Record<string, any>;
  schema?: unknown;
  parentSchema?: Record<string, any>;
}

function pointerToPath(pointer: string): string[] {
  if (!pointer) return [];
  return pointer
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** Maps JSON-schema (AJV) failures onto the MPC error keys, in the position of the payload. */
export function violationsFromAjv(errors: AjvError[]): Violations {
  const v = new Violations();
  // A failed union reports every branch; keep only the union's own failure.
  const unions = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf').map((e) => e.instancePath);
  for (const e of errors) {
    const path = pointerToPath(e.instancePath);
    const insideUnion = unions.some((u) => e.instancePath === u || e.instancePath.startsWith(u + '/'));
    if (insideUnion && e.keyword !== 'anyOf' && e.keyword !== 'oneOf') continue;
    switch (e.keyword) {
      case 'required':
        v.add([...path, e.params.missingProperty], 'blank');
        break;
      case 'additionalProperties':
        v.add([...path, e.params.additionalProperty], 'not_permitted');
        break;
      case 'minLength':
        v.add(path, e.params.limit === 1 ? 'blank' : 'too_short', e.params.limit === 1 ? undefined : { min_length: e.params.limit });
        break;
      case 'maxLength':
        v.add(path, 'too_long', { max_length: e.params.limit });
        break;
      case 'minItems':
        v.add(path, 'too_short', { min_length: e.params.limit });
        break;
      case 'maxItems':
        v.add(path, 'too_long', { max_length: e.params.limit });
        break;
      case 'pattern':
        v.add(path, 'invalid_format', { format: `/${e.params.pattern}/` });
        break;
      case 'format':
        if (e.params.format === 'msisdn') v.add(path, 'invalid_msisdn');
        else v.add(path, 'invalid_format', { format: e.params.format });
        break;
      case 'enum':
        v.add(path, 'inclusion', { in: e.params.allowedValues });
        break;
      case 'const':
        v.add(path, 'inclusion', { in: [e.params.allowedValue] });
        break;
      case 'anyOf':
      case 'oneOf': {
        const branches = (e.schema as any[]) ?? [];
        const literals = branches.filter((b) => b && 'const' in b).map((b) => b.const);
        if (literals.length === branches.length && literals.length > 0) v.add(path, 'inclusion', { in: literals });
        else v.add(path, 'invalid');
        break;
      }
      case 'minimum':
        v.add(path, 'greater_or_equal_to', { number: e.params.limit });
        break;
      case 'exclusiveMinimum':
        v.add(path, 'greater_than', { number: e.params.limit });
        break;
      case 'maximum':
        v.add(path, 'less_or_equal_to', { number: e.params.limit });
        break;
      case 'exclusiveMaximum':
        v.add(path, 'less_than', { number: e.params.limit });
        break;
      case 'type':
        // `add` turns integer / number / object / array into MPC's keys (not_an_integer …).
        v.add(path, 'invalid', { format: String(e.params.type).split(',')[0] });
        break;
      case 'uniqueItems':
        v.add(path, 'must_be_unique');
        break;
      default:
        v.add(path, 'invalid');
    }
  }
  return v.collapseBlank();
}

const BODY_PARSE_ERRORS = new Set(['FST_ERR_CTP_INVALID_JSON_BODY', 'FST_ERR_CTP_EMPTY_JSON_BODY']);

/** Router failures answered before any route runs (Fastify's `frameworkErrors`): never its own body. */
const FRAMEWORK_ERRORS: Record<string, [number, string]> = Object.assign(Object.create(null), {
  FST_ERR_MAX_PARAM_LENGTH: [414, 'Request-URI too long'],
  FST_ERR_BAD_URL: [400, 'Malformed URL'],
  FST_ERR_ASYNC_CONSTRAINT: [400, 'Bad request'],
});

export function answerFrameworkError(err: { code?: string }, reply: FastifyReply): FastifyReply {
  const [status, message] = FRAMEWORK_ERRORS[err.code ?? ''] ?? [400, 'Bad request'];
  return reply.status(status).send({ error: message });
}

export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError & { validation?: AjvError[]; validationContext?: string }, request, reply) => {
    if (err instanceof ApiError) {
      for (const [k, val] of Object.entries(err.headers)) reply.header(k, val);
      return reply.status(err.status).send({ error: err.message });
    }
    if (err instanceof ValidationFailed) {
      // Handler trees name body paths; a GET has none, its paths are in the query.
      const source = request.body !== undefined && request.body !== null ? request.body : request.query;
      return reply.status(422).send({ error: 'Invalid parameters', details: completeLeaves(err.details, source) });
    }
    // A path that does not name a resource (an id out of range, not an integer) is not found.
    if (err.validation && err.validationContext === 'params') return reply.status(404).send({ error: 'Not found' });
    if (err.validation) {
      const v = violationsFromAjv(err.validation);
      if (request.inputViolations) v.merge([], request.inputViolations);
      const source = err.validationContext === 'querystring' ? request.query : request.body;
      return reply.status(422).send({ error: 'Invalid parameters', details: completeLeaves(v.tree, source) });
    }
    // Unparsable JSON: the one documented case of an empty error body.
    if (BODY_PARSE_ERRORS.has(err.code) || (err instanceof SyntaxError && err.statusCode === 400)) {
      return reply.status(400).type('application/json').send('');
    }
    // The database cannot be reached (src/db/connection.ts): the request may succeed later.
    if (err instanceof DatabaseUnavailable) {
      return reply.status(503).header('Retry-After', String(DATABASE_RETRY_AFTER_SECONDS)).send({ error: 'Service unavailable' });
    }
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply.status(413).send({ error: 'Request body is too large' });
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return reply.status(415).send({ error: 'Unsupported Content-Type: send application/json' });
    }
    if (FRAMEWORK_ERRORS[err.code]) return answerFrameworkError(err, reply);
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.status(err.statusCode).send({ error: 'Bad request' });
    }
    request.log.error({ err, reqId: request.id }, 'unhandled error');
    return reply.status(500).send({ error: 'Internal server error' });
  });
}
