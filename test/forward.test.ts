import { expect } from 'chai';
import { definePlugin, type PluginInstance } from '../core/index.ts';
import { createTestGateway, type TestResponse } from '../core/testing/index.ts';
import { resourcesMadeDuring } from './support/async-resources.ts';

/** Promises made by the gateway's own code (core/) while `work` ran; the test client's are not counted. */
function gatewayPromisesDuring(work: () => Promise<void>): Promise<number> {
  return resourcesMadeDuring('PROMISE', (stack) => stack.includes('/core/http/') || stack.includes('/core/upstream/'), work);
}

/** Gateway promises made by five requests through a test gateway with `plugins`, after two to warm up. */
async function promisesPerFiveRequests(plugins: PluginInstance[], check: (res: TestResponse) => void = () => {}): Promise<number> {
  const gateway = await createTestGateway({ plugins });
  try {
    const send = async (): Promise<void> => {
      const res = await gateway.request('/orders/7');
      expect(res.status).to.equal(200);
      expect(res.json().url).to.equal('/orders/7');
      check(res);
    };
    await send();
    await send();
    return await gatewayPromisesDuring(async () => {
      for (let i = 0; i < 5; i++) await send();
    });
  } finally {
    await gateway.close();
  }
}

const waits = definePlugin({
  name: 'waits',
  version: '1.0.0',
  setup: () => ({
    onRequest: async () => {
      await Promise.resolve();
    },
  }),
});

const stamps = definePlugin({
  name: 'stamps',
  version: '1.0.0',
  setup: () => ({
    onRequest: (ctx) => {
      ctx.upstreamRequest.headers.set('x-stamped', 'yes');
    },
    onResponse: (_ctx, response) => {
      response.headers.set('x-stamped', 'yes');
    },
  }),
});

describe('forward', () => {
  it('answers a route without plugins from the upstream head, with no promise made on the way', async () => {
    expect(await promisesPerFiveRequests([])).to.equal(0);
  });

  it('makes none either for a route whose plugins answer their hooks synchronously', async () => {
    // The plugin did run, both ways: the upstream saw its header, and so did the client.
    const ranBothWays = (res: TestResponse): void => {
      expect(res.json().headers['x-stamped']).to.equal('yes');
      expect(res.headers['x-stamped']).to.equal('yes');
    };
    expect(await promisesPerFiveRequests([stamps()], ranBothWays)).to.equal(0);
  });

  it('still counts the promises of a route with a plugin that waits (the checks above can see them)', async () => {
    expect(await promisesPerFiveRequests([waits()])).to.be.at.least(5);
  });
});
