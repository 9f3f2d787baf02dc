import { hash, randomBytes } from 'node:crypto';

/** The form keys are stored in: `sha256:` and the hex digest of the key. */
export const KEY_HASH = /^sha256:[0-9a-f]{64}$/;

export function hashKey(key: string): string {
  // crypto.hash: the one-shot form, cheaper per request than createHash().update().digest().
  return `sha256:${hash('sha256', key, 'hex')}`;
}

/** A new random API key (32 bytes, base64url) and the hash to put in the config. */
export function newKey(): { key: string; keyHash: string } {
  const key = randomBytes(32).toString('base64url');
  return { key, keyHash: hashKey(key) };
}
