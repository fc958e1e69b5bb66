// Push peers for the tests: a Web Push endpoint that checks VAPID and DECRYPTS the payload with
// the subscription's keys (RFC 8291 / RFC 8188 aes128gcm, node:crypto ECDH + HKDF), and an FCM
// HTTP v1 endpoint with its OAuth token endpoint that verifies the service-account JWT.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createDecipheriv, createECDH, createPublicKey, createVerify, hkdfSync, randomBytes, verify, type KeyObject } from 'node:crypto';

const b64url = (b: Buffer) => b.toString('base64url');
const body = (req: IncomingMessage) =>
  new Promise<Buffer>((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
  });
const listen = async (server: Server) => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as AddressInfo).port;
};

/** A browser's side of a subscription: its ECDH key pair and auth secret. */
export function newSubscriber(endpoint: string) {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  const auth = randomBytes(16);
  return { ecdh, auth, subscription: { endpoint, keys: { p256dh: b64url(ecdh.getPublicKey()), auth: b64url(auth) } } };
}

/** RFC 8291 §3.4 + RFC 8188 §2: the receiving user agent's decryption. */
export function decryptAes128gcm(payload: Buffer, ua: { ecdh: ReturnType<typeof createECDH>; auth: Buffer }): string {
  const salt = payload.subarray(0, 16);
  const rs = payload.readUInt32BE(16);
  const idlen = payload[20];
  const asPublic = payload.subarray(21, 21 + idlen);
  const records = payload.subarray(21 + idlen);
  if (records.length > rs) throw new Error('test peer handles a single record only');
  const ecdhSecret = ua.ecdh.computeSecret(asPublic);
  const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), ua.ecdh.getPublicKey(), asPublic]);
  const ikm = Buffer.from(hkdfSync('sha256', ecdhSecret, ua.auth, keyInfo, 32));
  const cek = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: aes128gcm\0'), 16));
  const nonce = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: nonce\0'), 12));
  const d = createDecipheriv('aes-128-gcm', cek, nonce);
  d.setAuthTag(records.subarray(records.length - 16));
  const plain = Buffer.concat([d.update(records.subarray(0, records.length - 16)), d.final()]);
  // Strip padding: trailing zeros, then the 0x02 delimiter of the last record.
  let end = plain.length - 1;
  while (end >= 0 && plain[end] === 0) end--;
  if (plain[end] !== 2) throw new Error('bad padding delimiter');
  return plain.subarray(0, end).toString('utf8');
}

function verifyVapid(header: string | undefined, audience: string): { sub: string; publicKey: string } {
  const m = /^vapid t=([^,\s]+),\s*k=([^,\s]+)$/.exec(header ?? '');
  if (!m) throw new Error(`no VAPID authorization: ${header}`);
  const [h, c, s] = m[1].split('.');
  const raw = Buffer.from(m[2], 'base64url');
  const key = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: b64url(raw.subarray(1, 33)), y: b64url(raw.subarray(33, 65)) }, format: 'jwk' });
  if (!verify('sha256', Buffer.from(`${h}.${c}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url'))) throw new Error('bad VAPID signature');
  const claims = JSON.parse(Buffer.from(c, 'base64url').toString());
  if (claims.aud !== audience) throw new Error(`VAPID aud ${claims.aud} != ${audience}`);
  if (!(claims.exp > Date.now() / 1000)) throw new Error('VAPID expired');
  return { sub: claims.sub, publicKey: m[2] };
}

export interface Received {
  path: string;
  payload: any;
  vapid: { sub: string; publicKey: string };
  headers: IncomingMessage['headers'];
}

/** Web Push service: /push/<id>; ids gone-410, gone-404, busy answer accordingly. */
export async function startWebPushPeer() {
  const subscribers = new Map<string, ReturnType<typeof newSubscriber>>();
  const received: Received[] = [];
  const errors: string[] = [];
  const server = createServer(async (req, res) => {
    const raw = await body(req);
    const id = (req.url ?? '').split('/').pop()!;
    if (id === 'gone-410') return res.writeHead(410).end('expired');
    if (id === 'gone-404') return res.writeHead(404).end('not found');
    if (id === 'busy') return res.writeHead(429, { 'retry-after': '3' }).end();
    try {
      if (req.headers['content-encoding'] !== 'aes128gcm') throw new Error(`content-encoding ${req.headers['content-encoding']}`);
      const vapid = verifyVapid(req.headers.authorization, `http://127.0.0.1:${port}`);
      const sub = subscribers.get(id);
      if (!sub) throw new Error(`unknown subscription ${id}`);
      received.push({ path: req.url!, payload: JSON.parse(decryptAes128gcm(raw, sub)), vapid, headers: req.headers });
      res.writeHead(201, { location: `http://127.0.0.1:${port}/msg/${received.length}` }).end();
    } catch (err) {
      errors.push((err as Error).message);
      res.writeHead(400).end((err as Error).message);
    }
  });
  const port = await listen(server);
  return {
    port,
    received,
    errors,
    subscribe(id: string) {
      const s = newSubscriber(`http://127.0.0.1:${port}/push/${id}`);
      subscribers.set(id, s);
      return JSON.stringify(s.subscription);
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** FCM HTTP v1 and its token endpoint. Tokens "dead", "busy", "bad" answer with FCM errors. */
export async function startFcmPeer(publicKey: KeyObject, clientEmail: string) {
  const sent: any[] = [];
  const tokensIssued: string[] = [];
  const errors: string[] = [];
  let valid = new Set<string>();
  const server = createServer(async (req, res) => {
    const raw = (await body(req)).toString();
    const json = (status: number, v: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(v));
    if (req.url === '/token') {
      const form = new URLSearchParams(raw);
      const [h, c, s] = (form.get('assertion') ?? '').split('.');
      const claims = JSON.parse(Buffer.from(c ?? '', 'base64url').toString() || '{}');
      const ok =
        form.get('grant_type') === 'urn:ietf:params:oauth:grant-type:jwt-bearer' &&
        JSON.parse(Buffer.from(h, 'base64url').toString()).alg === 'RS256' &&
        createVerify('RSA-SHA256').update(`${h}.${c}`).verify(publicKey, Buffer.from(s, 'base64url')) &&
        claims.iss === clientEmail &&
        claims.aud === `http://127.0.0.1:${port}/token` &&
        claims.scope === 'https://www.googleapis.com/auth/firebase.messaging';
      if (!ok) {
        errors.push('bad assertion');
        return json(400, { error: 'invalid_grant' });
      }
      const token = `tok-${tokensIssued.length + 1}`;
      tokensIssued.push(token);
      valid.add(token);
      return json(200, { access_token: token, expires_in: 3600, token_type: 'Bearer' });
    }
    const m = /^\/v1\/projects\/([^/]+)\/messages:send$/.exec(req.url ?? '');
    if (!m) return json(404, { error: { code: 404, status: 'NOT_FOUND' } });
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (!bearer || !valid.has(bearer)) return json(401, { error: { code: 401, status: 'UNAUTHENTICATED', message: 'token' } });
    const msg = JSON.parse(raw).message;
    const err = (code: number, status: string, errorCode: string) =>
      json(code, { error: { code, status, message: errorCode, details: [{ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode }] } });
    if (msg.token === 'dead') return err(404, 'NOT_FOUND', 'UNREGISTERED');
    if (msg.token === 'busy') return err(503, 'UNAVAILABLE', 'UNAVAILABLE');
    if (msg.token === 'bad') return err(400, 'INVALID_ARGUMENT', 'INVALID_ARGUMENT');
    sent.push({ project: m[1], message: msg, token: bearer });
    return json(200, { name: `projects/${m[1]}/messages/${sent.length}` });
  });
  const port = await listen(server);
  return {
    port,
    sent,
    tokensIssued,
    errors,
    revokeTokens: () => (valid = new Set()),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
