// Route table entries from a gateway listener's attachments (a gateway serves one table per port,
// all the port's listeners together; their hostnames keep them apart).

import type { HTTPRouteIR } from '../config/snapshot.ts';
import type { RouteTableEntry } from './route-candidate.ts';

interface Attachment {
  /** "namespace/name" of the HTTPRoute. */
  route: string;
  hostnames: string[];
}

/**
 * A listener's attachments with their effective hostnames. An attachment without hostnames takes
 * "every host the listener takes" (RouteAttachmentIR): the listener's own hostname when it has
 * one. The attachment is the entry's payload. Routes missing from `routes` are skipped.
 */
export function listenerRouteEntries<A extends Attachment>(
  listener: { hostname?: string; routes: readonly A[] },
  routes: ReadonlyMap<string, HTTPRouteIR>,
): (RouteTableEntry<A> & { attachment: A })[] {
  const out: (RouteTableEntry<A> & { attachment: A })[] = [];
  for (const attachment of listener.routes) {
    const route = routes.get(attachment.route);
    if (route === undefined) continue;
    const hostnames =
      attachment.hostnames.length > 0
        ? attachment.hostnames
        : listener.hostname
          ? [listener.hostname]
          : [];
    out.push({ route, hostnames, attachment });
  }
  return out;
}
