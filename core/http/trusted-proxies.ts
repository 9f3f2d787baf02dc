import { BlockList, isIPv4, isIPv6 } from 'node:net';
import type { IncomingMessage } from 'node:http';

/**
 * Which peers may speak for the client through `X-Forwarded-*`. A header from anyone else is replaced,
 * never extended, so a client cannot forge its address or the chain before it.
 */
export class TrustedProxies {
  readonly #list = new BlockList();
  readonly #any: boolean;

  /** Entries are addresses (`10.0.0.7`) or CIDR blocks (`10.0.0.0/8`, `fd00::/8`). */
  constructor(entries: readonly string[]) {
    for (const entry of entries) addEntry(this.#list, entry);
    this.#any = entries.length > 0;
  }

  isTrusted(address: string | undefined): boolean {
    if (!this.#any || !address) return false;
    const plain = stripMappedPrefix(address);
    return this.#list.check(plain, isIPv6(plain) ? 'ipv6' : 'ipv4');
  }

  /** The peer, or behind trusted proxies the nearest `X-Forwarded-For` hop that is not one. */
  clientIp(req: IncomingMessage): string {
    const peer = stripMappedPrefix(req.socket.remoteAddress ?? '');
    if (!this.isTrusted(peer)) return peer;
    const header = req.headers['x-forwarded-for'];
    if (!header) return peer;
    const hops = (Array.isArray(header) ? header.join(',') : header).split(',');
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i]!.trim();
      if (!this.isTrusted(hop)) return hop;
    }
    return hops[0]!.trim();
  }
}

/** Throws a message naming the entry when it is neither an address nor a CIDR block. */
export function validateProxyEntry(entry: string): string | null {
  try {
    addEntry(new BlockList(), entry);
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

function addEntry(list: BlockList, entry: string): void {
  const [address = '', prefix] = entry.split('/');
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : null;
  if (!family) throw new Error(`"${entry}" is not an IP address or CIDR block`);
  if (prefix === undefined) {
    list.addAddress(address, family);
    return;
  }
  const bits = Number(prefix);
  const max = family === 'ipv4' ? 32 : 128;
  if (!/^\d+$/.test(prefix) || bits > max) throw new Error(`"${entry}" has an invalid prefix length (0-${max})`);
  list.addSubnet(address, bits, family);
}

function stripMappedPrefix(address: string): string {
  return address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address;
}
