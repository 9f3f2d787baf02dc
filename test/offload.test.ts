import { expect } from 'chai';
import client from 'prom-client';
import { request } from 'undici';
import { GatewayError } from '../core/errors.ts';
import { OffloadPool } from '../core/offload/offload-pool.ts';
import { offloadThreads } from '../core/offload/pool-size.ts';
import { createTestGateway, type TestGateway } from '../core/testing/index.ts';
import type fail from './fixtures/offload/fail.ts';
import type spin from './fixtures/offload/spin.ts';
import type where from './fixtures/offload/where.ts';
import type { reverse } from './fixtures/offload/where.ts';
import { spinner } from './fixtures/plugins/spinner.ts';
import { startGateway, CORE, FIXTURE_PLUGINS } from './support/gateway-process.ts';
import { startUpstream } from './support/upstream.ts';
import { waitFor } from './support/wait.ts';

const fixture = (name: string): URL => new URL(`./fixtures/offload/${name}`, import.meta.url);
const settings = { threads: 1 as const, inlineBelow: 1024, taskTimeout: 5_000, maxQueue: 8, niceIncrement: 10 };

async function rejection(promise: Promise<unknown>): Promise<GatewayError> {
  try {
    await promise;
  } catch (error) {
    expect(GatewayError.is(error), String(error)).to.equal(true);
    return error as GatewayError;
  }
  throw new Error('expected a rejection');
}

async function offloadCount(outcome: string): Promise<number> {
  const metric = await client.register.getSingleMetric('tollgate_offload_tasks_total')?.get();
  return (metric?.values ?? []).filter((value) => value.labels.outcome === outcome).reduce((sum, value) => sum + value.value, 0);
}

describe('offload', () => {
  describe('pool size', () => {
    it('gives each worker cores ÷ workers threads, at least one', () => {
      expect(offloadThreads('auto', 8, 8)).to.equal(1);
      expect(offloadThreads('auto', 8, 2)).to.equal(4);
      expect(offloadThreads('auto', 2, 4)).to.equal(1);
      expect(offloadThreads(3, 2, 2)).to.equal(3);
    });
  });

  describe('tasks', () => {
    let pool: OffloadPool;
    beforeEach(() => {
      pool = new OffloadPool(settings, 1);
    });
    afterEach(() => pool.close());

    it('runs an input smaller than inlineBelow on the event loop and a larger one on a pool thread', async () => {
      const task = await pool.task<typeof where>(fixture('where.ts'));
      const small = await task.run({ text: 'x' }, { size: 1 });
      const large = await task.run({ text: 'x'.repeat(2048) }, { size: 2048 });
      expect(small).to.include({ mainThread: true, length: 1 });
      expect(large).to.include({ mainThread: false, length: 2048 });
    });

    it('reads the size of bytes and strings itself, and sends an object of unknown size to a thread', async () => {
      const reversed = await pool.task<typeof reverse>(fixture('where.ts'), { export: 'reverse' });
      const task = await pool.task<typeof where>(fixture('where.ts'));
      expect(Array.from(await reversed.run(Uint8Array.of(1, 2, 3)))).to.deep.equal([3, 2, 1]);
      expect(await task.run({ text: 'tiny' })).to.include({ mainThread: false });
    });

    it('moves a transferred buffer to the thread instead of copying it', async () => {
      const task = await pool.task<typeof where>(fixture('where.ts'));
      const bytes = new Uint8Array(4096).fill(7);
      const result = await task.run({ bytes }, { transfer: [bytes] });
      expect(result).to.include({ mainThread: false, length: 4096 });
      // Moved: this side's view is empty now.
      expect(bytes.byteLength).to.equal(0);
    });

    it('answers a task that throws with TG_ERR_OFFLOAD_FAILED, inline and on a thread', async () => {
      const task = await pool.task<typeof fail>(fixture('fail.ts'));
      const onThread = await rejection(task.run({ message: 'broken input' }, { mode: 'thread' }));
      const inline = await rejection(task.run({ message: 'broken input' }, { mode: 'inline' }));
      for (const error of [onThread, inline]) {
        expect(error.code).to.equal('TG_ERR_OFFLOAD_FAILED');
        expect(error.status).to.equal(500);
        expect(error.logDetail).to.equal('task fail threw: broken input');
      }
    });

    it('stops a task that runs past its timeout and replaces its thread', async () => {
      const spinTask = await pool.task<typeof spin>(fixture('spin.ts'));
      const whereTask = await pool.task<typeof where>(fixture('where.ts'));
      const before = await whereTask.run({ text: 'x' }, { mode: 'thread' });
      const error = await rejection(spinTask.run({ ms: 60_000 }, { timeout: 200 }));
      expect(error.code).to.equal('TG_ERR_OFFLOAD_TIMEOUT');
      expect(error.status).to.equal(503);
      const after = await whereTask.run({ text: 'x' }, { mode: 'thread' });
      expect(after.threadId).to.not.equal(before.threadId);
    });

    it('cancels a running task when its signal aborts', async () => {
      const task = await pool.task<typeof spin>(fixture('spin.ts'));
      const controller = new AbortController();
      const running = task.run({ ms: 60_000 }, { signal: controller.signal });
      setTimeout(() => controller.abort(), 100);
      expect((await rejection(running)).code).to.equal('TG_ERR_CLIENT_CLOSED');
      expect((await rejection(task.run({ ms: 1 }, { signal: controller.signal }))).code).to.equal('TG_ERR_CLIENT_CLOSED');
    });

    it('refuses tasks with 503 TG_ERR_OFFLOAD_OVERLOADED once the queue is full', async () => {
      const small = new OffloadPool({ ...settings, maxQueue: 1 }, 1);
      try {
        const task = await small.task<typeof spin>(fixture('spin.ts'));
        await task.run({ ms: 1 }); // the thread is up: a starting thread would count as room
        const controller = new AbortController();
        const running = task.run({ ms: 60_000 }, { signal: controller.signal }).catch(() => null);
        const queued = task.run({ ms: 60_000 }, { signal: controller.signal }).catch(() => null);
        const refused = await rejection(task.run({ ms: 1 }));
        expect(refused.code).to.equal('TG_ERR_OFFLOAD_OVERLOADED');
        expect(refused.headers).to.deep.equal({ 'retry-after': '1' });
        controller.abort();
        await Promise.all([running, queued]);
      } finally {
        await small.close();
      }
    });

    it('fails at setup, naming the module, when the module has no such function or the path is relative', async () => {
      const missing = await rejection(pool.task(fixture('fail.ts'), { export: 'notAFunction' }));
      expect(missing.code).to.equal('TG_ERR_PLUGIN_SETUP');
      expect(missing.message).to.contain('fail.ts has no function export "notAFunction"');
      const relative = await rejection(pool.task('./fixtures/offload/fail.ts'));
      expect(relative.message).to.contain('give a file: URL');
      const absent = await rejection(pool.task(fixture('absent.ts')));
      expect(absent.message).to.contain('absent.ts');
    });

    it('lets running tasks finish when the pool closes', async () => {
      const task = await pool.task<typeof spin>(fixture('spin.ts'));
      let finished = false;
      const running = task.run({ ms: 300 }).then((turns) => {
        finished = true;
        return turns;
      });
      await new Promise((resolve) => setTimeout(resolve, 50));
      await pool.close();
      expect(finished).to.equal(true);
      expect(await running).to.be.greaterThan(0);
    });
  });

  describe('in a plugin', () => {
    let gw: TestGateway;
    before(async () => {
      gw = await createTestGateway({ plugins: [spinner()], config: { offload: { threads: 1 } } });
    });
    after(() => gw.close());

    it('maps a task that throws to a 500 JSON error with code TG_ERR_OFFLOAD_FAILED', async () => {
      const res = await gw.request('/work', { headers: { 'x-fail': '1' } });
      expect(res.status).to.equal(500);
      expect(res.json().error.code).to.equal('TG_ERR_OFFLOAD_FAILED');
      expect(res.text).to.not.contain('the task gave up');
    });

    it('cancels the task of a client that goes away, freeing the thread for the next request', async () => {
      const cancelledBefore = await offloadCount('cancelled');
      const controller = new AbortController();
      const leaving = request(`${gw.url}/work`, { headers: { 'x-spin-ms': '60000' }, signal: controller.signal }).catch(() => null);
      setTimeout(() => controller.abort(), 200);
      await leaving;
      await waitFor(async () => (await offloadCount('cancelled')) === cancelledBefore + 1, 'the task to be cancelled');
      // With one thread, this could only run if the abandoned 60 s task no longer holds it.
      const next = await gw.request('/work', { headers: { 'x-spin-ms': '10' } });
      expect(next.status).to.equal(200);
    });
  });

  describe('in the process tree', () => {
    it('finishes a running task on drain, then the worker exits and takes its threads with it', async () => {
      const upstream = await startUpstream();
      try {
        const gateway = await startGateway(`
        import { defineConfig } from '${CORE}';
        import { spinner } from '${FIXTURE_PLUGINS}/spinner.ts';
        export default defineConfig({
          listen: { port: 0, host: '127.0.0.1' },
          upstreams: { app: { targets: ['${upstream.url}'] } },
          routes: [{ path: '/*', upstream: 'app', plugins: [spinner()] }],
        });`, { workers: 1 });
        const pending = request(`${gateway.url}/work`, { headers: { 'x-spin-ms': '600' } });
        await new Promise((resolve) => setTimeout(resolve, 150));
        const exited = gateway.stop('SIGTERM');
        const res = await pending;
        expect(res.statusCode).to.equal(200);
        expect(((await res.body.json()) as { turns: number }).turns).to.be.greaterThan(0);
        expect(await exited).to.equal(0);
      } finally {
        await upstream.close();
      }
    });
  });
});
