// The client address that authorization and rate limits see: the peer address, or, when a
// ClientTrafficPolicy trusts proxies in front of the gateway, the right entry of X-Forwarded-For.

import { BlockList, isIP } from 'node:net';

export interface ClientIPDetection {
  xForwardedFor?: { numTrustedHops?: number; trustedCIDRs?: string[] };
}

export type ClientIPResolver = (peer: string, forwardedFor: string | undefined) => string;

export function clientIPResolver(detection: ClientIPDetection | undefined): ClientIPResolver {
  const xff = detection?.xForwardedFor;
  if (!xff) return (peer) => unmapped(peer);
  if (xff.trustedCIDRs?.length) {
    const trusted = new BlockList();
    for (const cidr of xff.trustedCIDRs) {
      const [net, bits] = cidr.split('/');
      trusted.addSubnet(net as string, Number(bits), isIP(net as string) === 6 ? 'ipv6' : 'ipv4');
    }
    const isTrusted = (ip: string) =>
      isIP(ip) !== 0 && trusted.check(ip, isIP(ip) === 6 ? 'ipv6' : 'ipv4');
    // Walk from the right past trusted proxies; the first untrusted address is the client.
    return (peer, forwarded) => {
      const chain = [...splitForwarded(forwarded), unmapped(peer)];
      for (let i = chain.length - 1; i >= 0; i--)
        if (!isTrusted(chain[i] as string)) return chain[i] as string;
      return chain[0] as string;
    };
  }
  const hops = xff.numTrustedHops ?? 0;
  // Envoy's rule: with the peer appended, the client is `hops` entries left of the right end.
  return (peer, forwarded) => {
    const chain = [...splitForwarded(forwarded), unmapped(peer)];
    return chain[Math.max(0, chain.length - 1 - hops)] as string;
  };
}

function splitForwarded(v: string | undefined): string[] {
  return v
    ? v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : [];
}

function unmapped(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}
