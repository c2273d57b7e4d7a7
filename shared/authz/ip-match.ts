// `ipBlocks`, `remoteIpBlocks` and the `source.ip`, `remote.ip`, `destination.ip` conditions:
// "Single IP (e.g. "203.0.113.4") and CIDR (e.g. "203.0.113.0/24") are supported."
// Built once into a node:net BlockList per field.

import { BlockList, isIP } from 'node:net';
import type { ValueMatcher } from './string-match.ts';

/** A dual-stack socket reports IPv4 peers as "::ffff:a.b.c.d"; policies are written in IPv4. */
export function canonicalIp(ip: string | undefined): string | undefined {
  if (ip === undefined) return undefined;
  const lower = ip.toLowerCase();
  if (lower.startsWith('::ffff:') && isIP(lower.slice(7)) === 4) return lower.slice(7);
  return ip;
}

/** True when the address is in any of the blocks; an absent or unparsable address is in none. */
export function ipBlocksMatcher(blocks: readonly string[]): ValueMatcher {
  const list = new BlockList();
  for (const block of blocks) {
    const slash = block.indexOf('/');
    const addr = slash < 0 ? block : block.slice(0, slash);
    const family = isIP(addr);
    // The schema and the compiler refuse anything else; skip rather than throw on the hot path.
    if (family === 0) continue;
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (slash < 0) list.addAddress(addr, type);
    else list.addSubnet(addr, Number(block.slice(slash + 1)), type);
  }
  return (value) => {
    const ip = canonicalIp(value);
    if (ip === undefined) return false;
    const family = isIP(ip);
    if (family === 0) return false;
    return list.check(ip, family === 6 ? 'ipv6' : 'ipv4');
  };
}
