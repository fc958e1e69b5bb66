// Transport URLs carry passwords and keys: stored AES-256-GCM encrypted, bound to their row
// (club, channel, role) as associated data so a ciphertext cannot be moved to another club.
// The key: HEI_SECRET_KEY (64 hex digits or base64 of 32 bytes; any other text is hashed to a
// key), else a key file generated once in the data folder. Several processes against one
// PostgreSQL server need the same HEI_SECRET_KEY.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export function keyFromText(text: string): Buffer {
  const t = text.trim();
  if (/^[0-9a-f]{64}$/i.test(t)) return Buffer.from(t, 'hex');
  const b = Buffer.from(t, 'base64');
  if (b.length === 32 && /^[A-Za-z0-9+/_-]+={0,2}$/.test(t)) return b;
  return createHash('sha256').update(t).digest();
}

const cache = new Map<string, Buffer>();

export function loadSecretKey(env: NodeJS.ProcessEnv = process.env): Buffer {
  if (env.HEI_SECRET_KEY) return keyFromText(env.HEI_SECRET_KEY);
  const dir = resolve(env.HEI_DATA_DIR ?? 'data');
  const file = join(dir, 'secret.key');
  const hit = cache.get(file);
  if (hit) return hit;
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    // 'wx' fails if another process wrote it first; then we read theirs.
    try {
      writeFileSync(file, randomBytes(32).toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
    } catch {
      // created concurrently
    }
  }
  const key = keyFromText(readFileSync(file, 'utf8'));
  cache.set(file, key);
  return key;
}

export function encryptSecret(key: Buffer, plain: string, aad: string): string {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(Buffer.from(aad));
  const ct = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
  return 'v1.' + Buffer.concat([iv, c.getAuthTag(), ct]).toString('base64url');
}

export function decryptSecret(key: Buffer, sealed: string, aad: string): string {
  if (!sealed.startsWith('v1.')) throw new Error('unknown secret format');
  const raw = Buffer.from(sealed.slice(3), 'base64url');
  const d = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
  d.setAAD(Buffer.from(aad));
  d.setAuthTag(raw.subarray(12, 28));
  try {
    return Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString('utf8');
  } catch {
    throw new Error('cannot decrypt a transport secret: wrong HEI_SECRET_KEY or key file?');
  }
}
