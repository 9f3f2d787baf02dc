import { expect } from 'chai';
import { isoTimeByMillisecond } from '../core/log/logger.ts';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { REPO } from './support/gateway-process.ts';

/**
 * Runs a process that logs `lines` lines of ~1 KB to a stdout pipe nobody reads until it is done
 * logging, then reads everything it wrote. Returns its stdout lines and the heap it used meanwhile.
 */
async function logIntoAStalledPipe(lines: number): Promise<{ out: Record<string, unknown>[]; heapGrowthMiB: number }> {
  const script = `
    const { createLogger } = await import(${JSON.stringify(join(REPO, 'core/log/logger.ts'))});
    const { logger, close } = createLogger('info', { role: 'test' }, { maxBufferedBytes: 1024 * 1024, dropNoticeEveryMs: 100 });
    globalThis.gc();
    // Buffered lines are Buffers, outside the JavaScript heap: count both.
    const used = () => { const m = process.memoryUsage(); return m.heapUsed + m.arrayBuffers; };
    const before = used();
    const filler = 'x'.repeat(1000);
    for (let i = 0; i < ${lines}; i++) logger.warn({ i, filler }, 'upstream refused');
    const growth = (used() - before) / 1048576;
    process.stderr.write(JSON.stringify({ growth }) + '\\n');
    // The reader starts once it sees the line above; the drop notice comes when the buffer has room.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await close();
  `;
  const child = spawn(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pause();
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
  while (!stderr.includes('\n')) await once(child.stderr, 'data');
  const chunks: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  child.stdout.resume();
  await once(child, 'exit');
  const out = Buffer.concat(chunks).toString().trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  return { out, heapGrowthMiB: (JSON.parse(stderr.split('\n')[0]!) as { growth: number }).growth };
}

describe('logger', function () {
  this.timeout(60_000);

  it('holds a bounded buffer when stdout does not keep up, drops the rest and says how many lines it dropped', async () => {
    // 50,000 lines of ~1.1 KB: ~55 MB, against a 1 MiB buffer and a 64 KiB pipe.
    const { out, heapGrowthMiB } = await logIntoAStalledPipe(50_000);
    expect(heapGrowthMiB).to.be.below(16);
    const written = out.filter((line) => line.msg === 'upstream refused');
    const notices = out.filter((line) => typeof line.droppedLines === 'number');
    expect(written.length).to.be.greaterThan(0).and.below(5_000);
    expect(notices).to.have.length(1);
    expect(notices[0]!.msg).to.match(/log lines dropped: stdout did not keep up/);
    expect(written.length + (notices[0]!.droppedLines as number)).to.equal(50_000);
    // What is written is whole lines, in order, from the start.
    expect(written.map((line) => line.i)).to.deep.equal(written.map((_, index) => index));
  });
});

describe('logger output', () => {
  it('writes text outside ASCII byte for byte, every line whole and in order', async () => {
    const words = ['café', 'Straße', '→ upstream', '東京', 'emoji 🚦', 'plain'];
    const script = `
      const { createLogger } = await import(${JSON.stringify(join(REPO, 'core/log/logger.ts'))});
      const { logger, close } = createLogger('info', { role: 'test' });
      const words = ${JSON.stringify(words)};
      for (let i = 0; i < 3000; i++) logger.info({ i, word: words[i % words.length] }, 'request');
      await close();
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    await once(child, 'exit');
    const lines = Buffer.concat(chunks).toString('utf8').trim().split('\n').map((line) => JSON.parse(line) as { i: number; word: string });
    expect(lines).to.have.length(3000);
    lines.forEach((line, index) => {
      expect(line.i).to.equal(index);
      expect(line.word).to.equal(words[index % words.length]);
    });
  });
});

describe('logger time field', () => {
  it('is the ISO time of the millisecond it is written in, made once per millisecond', () => {
    let clock = Date.UTC(2026, 10, 27, 9, 30, 0, 5);
    const time = isoTimeByMillisecond(() => clock);
    const first = time();
    expect(first).to.equal(',"time":"2026-11-27T09:30:00.005Z"');
    expect(time(), 'the same millisecond: the same text').to.equal(first);
    clock += 1;
    expect(time()).to.equal(',"time":"2026-11-27T09:30:00.006Z"');
    // As pino writes it: a valid JSON member that parses back to the time.
    expect(JSON.parse(`{"level":"info"${time()}}`).time).to.equal(new Date(clock).toISOString());
  });
});
