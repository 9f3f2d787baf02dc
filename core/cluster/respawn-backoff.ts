const BASE_MS = 100;
const MAX_MS = 30_000;

/**
 * How long to wait before replacing a worker after `failures` short-lived runs in a row: at once
 * after a healthy run, then 100 ms doubling up to 30 s, so a crash loop cannot spin the CPU.
 */
export function respawnDelay(failures: number): number {
  if (failures <= 1) return failures === 0 ? 0 : BASE_MS;
  return Math.min(MAX_MS, BASE_MS * 2 ** (failures - 1));
}
