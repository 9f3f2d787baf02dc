import { expect } from 'chai';
import bcrypt from 'bcryptjs';
import { SignJWT } from 'jose';
import { LRUCache } from 'lru-cache';
import { LRU_CLOCK } from '../core/lru-clock.ts';
import type { PluginInstance } from '../core/index.ts';
import { createTestGateway } from '../core/testing/index.ts';
import { basicAuth, cache, jwtAuth } from '../plugins/index.ts';
import { resourcesMadeDuring } from './support/async-resources.ts';

/** Timers lru-cache started while `work` ran (other timers, the test client's say, are not counted). */
function lruTimersStartedBy(work: () => void | Promise<void>): Promise<number> {
  return resourcesMadeDuring('Timeout', (stack) => stack.includes('/lru-cache/'), work);
}

/** lru-cache timers started by ten requests through a test gateway with `plugin`, after three to warm up. */
async function lruTimersPerTenRequests(plugin: PluginInstance, headers: Record<string, string>): Promise<number> {
  const gateway = await createTestGateway({ plugins: [plugin] });
  try {
    const send = async (): Promise<void> => {
      const res = await gateway.request('/orders', { headers });
      expect(res.status).to.equal(200);
    };
    for (let i = 0; i < 3; i++) await send();
    return await lruTimersStartedBy(async () => {
      for (let i = 0; i < 10; i++) await send();
    });
  } finally {
    await gateway.close();
  }
}

/** What the auth plugins and the cache's hit-for-miss marks do per request: a set, then reads. */
function useTimedCache(cache: LRUCache<string, number>): void {
  cache.set('key', 1);
  for (let i = 0; i < 3; i++) cache.get('key');
}

describe('timed caches on the request path', () => {
  it('start no timer when they read the clock (lru-cache alone starts one per read)', async () => {
    // The control shows what LRU_CLOCK is for, and that the hook does count lru-cache's timers.
    expect(await lruTimersStartedBy(() => useTimedCache(new LRUCache<string, number>({ max: 10, ttl: 60_000 })))).to.be.greaterThan(0);
    expect(await lruTimersStartedBy(() => useTimedCache(new LRUCache<string, number>({ max: 10, ttl: 60_000, ...LRU_CLOCK })))).to.equal(0);
  });

  it("start no timer per request in the bundled plugins (the cache's hit-for-miss marks, jwtAuth's and basicAuth's verified credentials)", async () => {
    const secret = 'a-shared-secret-that-is-long-enough-32+';
    const now = Math.floor(Date.now() / 1000);
    const jwt = await new SignJWT({ sub: 'alice', iat: now, exp: now + 300 }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret));
    const passwordHash = await bcrypt.hash('alice-pass', 4);
    const cases: [string, PluginInstance, Record<string, string>][] = [
      // Larger than maxEntrySize: never stored, so every request reads and renews the URL's mark.
      ['cache', cache({ ttl: '1h', maxEntrySize: 1 }), {}],
      ['jwtAuth', jwtAuth({ algorithms: ['HS256'], secret }), { authorization: `Bearer ${jwt}` }],
      ['basicAuth', basicAuth({ users: { alice: { passwordHash } } }), { authorization: `Basic ${Buffer.from('alice:alice-pass').toString('base64')}` }],
    ];
    for (const [name, plugin, headers] of cases) {
      expect(await lruTimersPerTenRequests(plugin, headers), name).to.equal(0);
    }
  });

  it('still let an entry expire at its ttl', async () => {
    const cache = new LRUCache<string, number>({ max: 10, ttl: 30, ...LRU_CLOCK });
    cache.set('key', 1);
    expect(cache.get('key')).to.equal(1);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(cache.get('key')).to.equal(undefined);
  });
});
