import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat's CPU times (USER_HZ: 100 on Linux). */
export const CLK_TCK = 100;

/** Pins a process and all its threads to a taskset CPU list ('0', '1-3'). */
export function pin(pid: number, cpus: string): void {
  execFileSync('taskset', ['-a', '-pc', cpus, String(pid)], { stdio: 'ignore' });
}

/** User plus system CPU time of `pids`, in clock ticks. */
export function cpuTicks(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    const fields = readProc(pid, 'stat').split(') ')[1]!.split(' ');
    total += Number(fields[11]) + Number(fields[12]);
  }
  return total;
}

/** A file of /proc/<pid>; a process that is gone is named as such (a gateway that died mid-round, say). */
function readProc(pid: number, file: string): string {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`process ${pid} is gone: it exited while it was being measured`);
    throw error;
  }
}

export interface Memory {
  rssMiB: number;
  /** Anonymous memory: RSS less the pages of files (the executable's among them), which every process running the same binary shares. */
  ownMiB: number;
}

/** Resident memory of the largest of `pids` (the worker, for a gateway). */
export function largestMemory(pids: number[]): Memory {
  let largest: Memory = { rssMiB: 0, ownMiB: 0 };
  for (const pid of pids) {
    const status = readProc(pid, 'status');
    const kib = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
    if (kib('VmRSS') / 1024 > largest.rssMiB) largest = { rssMiB: kib('VmRSS') / 1024, ownMiB: kib('RssAnon') / 1024 };
  }
  return largest;
}

/**
 * Forks a bench server (`script`, a path: the upstream, the OTLP sink, a peer gateway given `args`),
 * pinned to `cpus` when given; resolves once it has said its port.
 */
export async function forkHelper(script: string, cpus: string | undefined, args: string[] = []): Promise<{ port: number; pid: number; child: ChildProcess }> {
  const child = fork(script, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const [message] = (await once(child, 'message')) as [{ port: number }];
  if (cpus !== undefined) pin(child.pid!, cpus);
  return { port: message.port, pid: child.pid!, child };
}

/** Stops a process tree (SIGTERM: a gateway's primary stops its workers) and waits for it to go. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}
