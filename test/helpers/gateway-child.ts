// A GatewayServer alone in a child process, for tests that measure the gateway itself (memory
// while bodies stream through). Driven over IPC: started with `node --import tsx` by fork().
//
//   parent → { type: 'start', config: string, portOffset: number }
//   child  → { type: 'ready', ports: BoundPort[], problems: string[] }
//   parent → { type: 'memory', gc?: boolean }
//   child  → { type: 'memory', rss, heapUsed, arrayBuffers } (after a full GC when asked and the
//            child runs with --expose-gc: then only memory still referenced counts)
//   parent → { type: 'stop' }     child closes the server and exits

import { createLogger } from '../../gateway/access-log.ts';
import { GatewayServer } from '../../gateway/gateway-server.ts';
import { compile } from '../../shared/config/compile/compile.ts';
import { parseTexts } from '../../shared/config/parse.ts';

type Command =
  | { type: 'start'; config: string; portOffset: number }
  | { type: 'memory'; gc?: boolean }
  | { type: 'stop' };

let server: GatewayServer | undefined;

function reply(message: unknown): void {
  process.send?.(message);
}

process.on('message', (command: Command) => {
  void (async () => {
    switch (command.type) {
      case 'start': {
        const parsed = parseTexts([{ file: 'config.yaml', text: command.config }]);
        const { snapshot } = compile(parsed.resources);
        server = new GatewayServer({
          listenHost: '127.0.0.1',
          portOffset: command.portOffset,
          logger: createLogger('off'),
        });
        const applied = await server.apply(snapshot);
        reply({
          type: 'ready',
          ports: applied.ports,
          problems: [...parsed.errors.map((e) => e.message), ...applied.problems],
        });
        break;
      }
      case 'memory': {
        if (command.gc) (globalThis as { gc?: () => void }).gc?.();
        const m = process.memoryUsage();
        reply({ type: 'memory', rss: m.rss, heapUsed: m.heapUsed, arrayBuffers: m.arrayBuffers });
        break;
      }
      case 'stop':
        await server?.close();
        process.disconnect?.();
        process.exit(0);
    }
  })();
});

// The parent went away without saying stop: do not linger.
process.on('disconnect', () => {
  void server?.close().finally(() => process.exit(0));
});
