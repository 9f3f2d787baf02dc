import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const START = '<!-- npm run bench: latest full run, written by bench/write-results.ts -->';
const END = '<!-- end of the latest full run -->';

export interface RunRecord {
  date: string;
  command: string;
  setup: string;
  table: string[];
  ratios: string[];
}

/**
 * Replaces the generated block of `file` (between START and END, made after `### Results` the first
 * time) with this run: date, machine, versions, the table and the target ratios. The prose around it
 * is left alone.
 */
export function writeLatestRun(file: string, run: RunRecord): void {
  const block = [
    START,
    `**Latest full run: ${run.date}** (\`${run.command}\`)`,
    '',
    `- machine: ${machine()}`,
    `- versions: ${versions().join(', ')}`,
    `- ${run.setup}; CPU µs/req counts the proxy's processes (for tollgate, the worker and the primary); RSS is the largest worker's (tollgate) or process's (the others), and own MiB its anonymous memory (RSS less file pages such as the executable's, which processes of one binary share)`,
    '',
    ...run.table,
    '',
    ...run.ratios.map((line) => `${line}  `),
    END,
  ].join('\n');
  const text = readFileSync(file, 'utf8');
  const start = text.indexOf(START);
  const end = text.indexOf(END);
  let updated: string;
  if (start !== -1 && end > start) updated = text.slice(0, start) + block + text.slice(end + END.length);
  else {
    const anchor = text.indexOf('### Results');
    if (anchor === -1) throw new Error(`${file} has neither a generated block nor a "### Results" heading to put one under`);
    const after = text.indexOf('\n', anchor) + 1;
    updated = `${text.slice(0, after)}\n${block}\n${text.slice(after)}`;
  }
  writeFileSync(file, updated);
}

function machine(): string {
  const cpu = /model name\s*:\s*(.+)/.exec(readIf('/proc/cpuinfo'))?.[1]?.trim() ?? 'unknown CPU';
  const os = /PRETTY_NAME="([^"]+)"/.exec(readIf('/etc/os-release'))?.[1] ?? 'unknown OS';
  // Not availableParallelism(): the bench pins itself to the load side's cores before it gets here.
  return `${cpu}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, ${os}, Linux ${release()}`;
}

function versions(): string[] {
  const found = [`tollgate ${packageVersion(REPO)}`, `Node ${process.versions.node}`];
  const tool = (name: string, command: string, args: string[], pattern: RegExp): void => {
    // nginx -v writes to stderr, wrk -v exits 1: both still say their version somewhere.
    const result = spawnSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const match = pattern.exec(`${result.stdout ?? ''}${result.stderr ?? ''}`);
    if (match) found.push(`${name} ${match[1]}`);
  };
  tool('wrk', 'wrk', ['-v'], /wrk (?:debian\/)?([\d.]+)/);
  for (const nginx of ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx']) {
    if (existsSync(nginx)) {
      tool('nginx', nginx, ['-v'], /nginx\/([\d.]+)/);
      break;
    }
  }
  tool('redis-server', 'redis-server', ['--version'], /v=([\d.]+)/);
  for (const peer of ['fast-gateway', 'fastify', '@fastify/http-proxy']) {
    const dir = join(REPO, 'bench/peers/node_modules', peer);
    if (existsSync(dir)) found.push(`${peer} ${packageVersion(dir)}`);
  }
  return found;
}

function packageVersion(dir: string): string {
  return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
}

function readIf(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
