import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';

/**
 * A port free on `host` right now, for `listen.port: 0`. The primary picks it and the workers bind
 * it a moment later, so something else could take it in between. A port the kernel hands out for
 * `listen(0)` or an outgoing connection comes from its ephemeral range, and so would any other
 * program's "free port" taken the same way: the probe looks below that range first (Linux), where
 * nothing is handed out, and falls back to the kernel's choice.
 */
export async function freePort(host: string): Promise<number> {
  const range = ephemeralRange();
  if (range !== null && range.low > LOWEST + 1) {
    for (let attempt = 0; attempt < 20; attempt++) {
      const port = LOWEST + Math.floor(Math.random() * (range.low - LOWEST));
      if ((await bindable(host, port)) !== null) return port;
    }
  }
  return (await bindable(host, 0))!;
}

/** The lowest port it tries: clear of the low ports where well-known services listen. */
const LOWEST = 10_000;

/** The kernel's range for ports it chooses itself, where it says (Linux); null elsewhere. */
export function ephemeralRange(): { low: number; high: number } | null {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return Number.isInteger(low) && Number.isInteger(high) ? { low: low!, high: high! } : null;
  } catch {
    return null;
  }
}

/** Binds `port` (0: the kernel's choice) and releases it: the port, or null when it was taken. */
function bindable(host: string, port: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (error: NodeJS.ErrnoException) => (port !== 0 && (error.code === 'EADDRINUSE' || error.code === 'EACCES') ? resolve(null) : reject(error)));
    probe.listen({ port, host, exclusive: true }, () => {
      const bound = (probe.address() as AddressInfo).port;
      probe.close(() => resolve(bound));
    });
  });
}
