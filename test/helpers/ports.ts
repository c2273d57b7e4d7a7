// Free ports for tests that bind sockets. Upstreams use listen(0); a GatewayServer binds each
// listener port plus an offset, so tests need an offset under which every listener port is free.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** Whether `host:port` can be bound right now (bound and released at once). */
export function canBind(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** A port the kernel hands out for listen(0), released before it is returned. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** The first port of the kernel's ephemeral range (Linux: 32768), where listen(0) picks from. */
function ephemeralLow(): number {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/);
    const n = Number(low);
    return Number.isInteger(n) && n > 12_000 ? n : 32_768;
  } catch {
    return 32_768;
  }
}

/**
 * A port offset under which every listener port (port + offset) can be bound now. Candidates are
 * drawn below the ephemeral range, where neither listen(0) nor outgoing connections land, so the
 * only possible collision is another test file drawing the same candidate in the same instant;
 * `startGateway` retries with a new offset when that happens.
 */
export async function findPortOffset(
  listenerPorts: readonly number[],
  options: { host?: string; attempts?: number } = {},
): Promise<number> {
  const host = options.host ?? '127.0.0.1';
  const ports = [...new Set(listenerPorts)].sort((a, b) => a - b);
  const low = ports[0] ?? 0;
  const span = (ports[ports.length - 1] ?? 0) - low;
  const floor = 10_000;
  const ceiling = ephemeralLow() - 1 - span;
  if (ceiling <= floor) throw new Error(`listener ports span ${span}: too wide for an offset`);
  for (let attempt = 0; attempt < (options.attempts ?? 50); attempt++) {
    const base = floor + Math.floor(Math.random() * (ceiling - floor));
    const offset = base - low;
    let free = true;
    for (const p of ports) {
      if (!(await canBind(p + offset, host))) {
        free = false;
        break;
      }
    }
    if (free) return offset;
  }
  throw new Error(`no free port offset for listener ports ${ports.join(', ')}`);
}
