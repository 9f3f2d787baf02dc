import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

/**
 * Where the time went, from the `.cpuprofile` files `--cpu-prof` wrote into `dir`: for the busiest
 * process (a gateway's worker, not its idle primary), self time by package or tollgate file, and by
 * function, as lines to print.
 */
export function summariseProfiles(dir: string, top = 25): string[] {
  let busiest: { file: string; self: Map<number, number>; total: number; nodes: ProfileNode[] } | null = null;
  for (const file of readdirSync(dir).filter((name) => name.endsWith('.cpuprofile'))) {
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
    const self = new Map<number, number>();
    profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
    const idle = profile.nodes.filter((node) => node.callFrame.functionName === '(idle)').reduce((sum, node) => sum + (self.get(node.id) ?? 0), 0);
    const total = [...self.values()].reduce((a, b) => a + b, 0) - idle;
    if (busiest === null || total > busiest.total) busiest = { file, self, total, nodes: profile.nodes };
  }
  if (busiest === null) return ['no profile was written'];
  const byPlace = new Map<string, number>();
  const byFunction = new Map<string, number>();
  for (const node of busiest.nodes) {
    const time = busiest.self.get(node.id) ?? 0;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)') continue;
    const place = url.includes('node_modules/')
      ? url.split('node_modules/').at(-1)!.split('/').slice(0, url.split('node_modules/').at(-1)!.startsWith('@') ? 2 : 1).join('/')
      : url.startsWith('node:') ? url
        : /\/(core|plugins)\//.test(url) ? `tollgate ${url.slice(url.search(/\/(core|plugins)\//) + 1)}`
          : functionName || '(native)';
    byPlace.set(place, (byPlace.get(place) ?? 0) + time);
    const where = url ? `${url.split('/').slice(-2).join('/')}:${lineNumber + 1}` : '';
    const key = `${functionName || '(anonymous)'} ${where}`.trim();
    byFunction.set(key, (byFunction.get(key) ?? 0) + time);
  }
  const share = (time: number): string => `${((100 * time) / busiest!.total).toFixed(1).padStart(5)} %`;
  const sorted = (map: Map<string, number>): [string, number][] => [...map].sort((a, b) => b[1] - a[1]).slice(0, top);
  return [
    `${busiest.file}: ${(busiest.total / 1e6).toFixed(2)} s busy (idle left out)`,
    'self time by package or file:',
    ...sorted(byPlace).map(([place, time]) => `  ${share(time)}  ${place}`),
    'self time by function:',
    ...sorted(byFunction).map(([name, time]) => `  ${share(time)}  ${name}`),
  ];
}
