// `Idempotency-Key` on POST: the first response is kept 24 h and replayed for the same key and
// body; the same key with another body is a 422; a retry while the first still runs is a 409.
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Database } from '../db/connection.ts';
import { ApiError, ValidationFailed } from './errors.ts';

const KEY = /^[\x21-\x7e]{1,255}$/;
const TTL_HOURS = 24;

declare module 'fastify' {
  interface FastifyRequest {
    idempotency: { scope: string; key: string } | null;
  }
}

function requestHash(request: FastifyRequest): string {
  return createHash('sha256')
    .update(request.method + ' ' + request.url + '\n' + JSON.stringify(request.body ?? null))
    .digest('hex');
}

export function installIdempotency(app: FastifyInstance, db: Database): void {
  app.decorateRequest('idempotency', null);

  app.addHook('preHandler', async (request, reply) => {
    if (request.method !== 'POST' || !request.auth) return;
    const raw = request.headers['idempotency-key'];
    if (raw === undefined) return;
    const key = Array.isArray(raw) ? raw[0] : raw;
    if (!KEY.test(key)) throw new ApiError(471, 'Invalid header value: Idempotency-Key');
    // Per client token; a request made with a user token alone is scoped to its user.
    const client = request.auth.client;
    const scope = client ? `token:${client.id}` : `user:${request.auth.user!.user_id}`;
    const hash = requestHash(request);

    // Expired keys are forgotten first, so that an old key starts afresh.
    await db.query(
      `DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND created_at < now() - make_interval(hours => $3)`,
      [scope, key, TTL_HOURS],
    );
    const inserted = await db.query(
      `INSERT INTO idempotency_keys (scope, client_token_id, user_id, key, request_hash) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT DO NOTHING RETURNING key`,
      [scope, client?.id ?? null, client ? null : request.auth.user!.user_id, key, hash],
    );
    if (inserted.rowCount === 1) {
      request.idempotency = { scope, key };
      return;
    }
    const { rows } = await db.query<{ request_hash: string; state: string; response_status: number; response_body: string }>(
      `SELECT request_hash, state, response_status, response_body FROM idempotency_keys WHERE scope = $1 AND key = $2`,
      [scope, key],
    );
    const first = rows[0];
    if (!first) throw new ApiError(409, 'A request with this Idempotency-Key is in progress');
    if (first.request_hash !== hash) {
      throw new ValidationFailed({ idempotency_key: [{ error: 'already_used_with_other_parameters' }] });
    }
    if (first.state === 'running') throw new ApiError(409, 'A request with this Idempotency-Key is in progress');
    reply.header('idempotent-replayed', 'true');
    return reply.status(first.response_status).type('application/json').send(first.response_body);
  });

  app.addHook('onSend', async (request, reply, payload) => {
    const idem = request.idempotency;
    if (!idem) return payload;
    request.idempotency = null;
    if (reply.statusCode >= 500) {
      // A failure is not an answer: the client may try again with the same key.
      await db.query(`DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2`, [idem.scope, idem.key]);
    } else {
      await db.query(
        `UPDATE idempotency_keys SET state = 'done', response_status = $3, response_body = $4 WHERE scope = $1 AND key = $2`,
        [idem.scope, idem.key, reply.statusCode, typeof payload === 'string' ? payload : String(payload ?? '')],
      );
    }
    return payload;
  });

  // A request that dies without a response must not keep its key locked forever.
  app.addHook('onResponse', async (request) => {
    const idem = request.idempotency;
    if (idem) await db.query(`DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND state = 'running'`, [idem.scope, idem.key]);
  });
}
