import { execFileSync } from 'node:child_process';
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
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    total += Number(fields[11]) + Number(fields[12]);
  }
  return total;
}
