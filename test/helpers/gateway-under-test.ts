// Runs the edge gateway in-process on 127.0.0.1 for traffic tests: config text → parse → compile
// → GatewayServer.apply, on a port offset under which every listener port is free.

import { createLogger } from '../../gateway/access-log.ts';
import { GatewayServer, type GatewayServerOptions } from '../../gateway/gateway-server.ts';
import { compile, type CompileResult } from '../../shared/config/compile/compile.ts';
import { formatConfigError } from '../../shared/config/errors.ts';
import { parseTexts } from '../../shared/config/parse.ts';
import type { Snapshot } from '../../shared/config/snapshot.ts';
import { findPortOffset } from './ports.ts';

/** Parses and compiles config text; a parse error fails the test at once. */
export function compileConfig(...texts: string[]): CompileResult {
  const parsed = parseTexts(texts.map((text, i) => ({ file: `config-${i}.yaml`, text })));
  if (parsed.errors.length > 0)
    throw new Error(`config does not parse:\n${parsed.errors.map(formatConfigError).join('\n')}`);
  return compile(parsed.resources, { now: new Date(0) });
}

export interface GatewayUnderTest {
  server: GatewayServer;
  snapshot: Snapshot;
  offset: number;
  /** The bound port of a listener port. */
  port(listenerPort: number): number;
  /** `http://127.0.0.1:<bound port><path>`. */
  url(listenerPort: number, path?: string): string;
  close(): Promise<void>;
}

export type GatewayTestOptions = Partial<Omit<GatewayServerOptions, 'listenHost' | 'portOffset'>>;

/**
 * Starts a GatewayServer for `snapshot` (or config text). When another test took a port between
 * the offset search and the bind, the server is closed and started again on a new offset.
 */
export async function startGateway(
  config: Snapshot | string | string[],
  options: GatewayTestOptions = {},
): Promise<GatewayUnderTest> {
  const snapshot =
    typeof config === 'string' || Array.isArray(config)
      ? compileConfig(...(Array.isArray(config) ? config : [config])).snapshot
      : config;
  const wanted = options.gateways ? new Set(options.gateways) : undefined;
  const listenerPorts = snapshot.gateways
    .filter((g) => !wanted || wanted.has(`${g.namespace}/${g.name}`))
    .flatMap((g) => g.listeners.map((l) => l.port));
  if (listenerPorts.length === 0) throw new Error('the config has no gateway listener');
  for (let attempt = 1; ; attempt++) {
    const offset = await findPortOffset(listenerPorts);
    const server = new GatewayServer({
      listenHost: '127.0.0.1',
      portOffset: offset,
      logger: options.logger ?? createLogger('off'),
      ...options,
    });
    const applied = await server.apply(snapshot);
    if (applied.problems.length === 0) {
      const port = (p: number) => {
        const bound = applied.ports.find((b) => b.port === p);
        if (!bound) throw new Error(`listener port ${p} is not served`);
        return bound.boundPort;
      };
      return {
        server,
        snapshot,
        offset,
        port,
        url: (p, path = '/') => `http://127.0.0.1:${port(p)}${path}`,
        close: () => server.close(),
      };
    }
    await server.close();
    const busy = applied.problems.every((p) => p.includes('EADDRINUSE'));
    if (!busy || attempt >= 5)
      throw new Error(`gateway did not start:\n${applied.problems.join('\n')}`);
  }
}
