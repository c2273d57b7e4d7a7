import { ConfigFolderError } from '../shared/config/config-folder-error.ts';
import { UsageError } from './commands/usage-error.ts';
import {
  CONTROL_PLANE_USAGE,
  DEMO_USAGE,
  GATEWAY_USAGE,
  SIDECAR_USAGE,
  STATUS_USAGE,
  TOKEN_USAGE,
} from './commands/usage.ts';

// Each command is imported when it runs, not before: a sidecar does not load the config compiler,
// fastify or ioredis, which keeps its memory small (the mesh bench measures it).

const USAGE = `meshgate: API gateway and service mesh

usage:
  meshgate validate DIR [--json] [--root-namespace NS]
  meshgate explain DIR (--gateway NS/NAME [--listener NAME] [--port N] | --service NS/NAME [--port N])
                       --host H --path P [--method M] [--header k=v]... [--query k=v]... [--json]
  meshgate explain DIR --requests FILE [--json]
  ${GATEWAY_USAGE}
  ${TOKEN_USAGE}
  ${CONTROL_PLANE_USAGE}
  ${SIDECAR_USAGE}
  ${STATUS_USAGE}
  ${DEMO_USAGE}
`;

/** Runs one CLI command and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'validate':
        return await (await import('./commands/validate.ts')).runValidate(rest);
      case 'explain':
        return await (await import('./commands/explain.ts')).runExplain(rest);
      case 'gateway':
        return await (await import('./commands/gateway.ts')).runGateway(rest);
      case 'sidecar':
        return await (await import('./commands/sidecar.ts')).runSidecar(rest);
      case 'token':
        return await (await import('./commands/token.ts')).runToken(rest);
      case 'control-plane':
        return await (await import('./commands/control-plane.ts')).runControlPlane(rest);
      case 'status':
        return await (await import('./commands/status.ts')).runStatus(rest);
      case 'demo':
        return await (await import('./commands/demo.ts')).runDemo(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        process.stderr.write(`meshgate: unknown command "${command}"\n\n${USAGE}`);
        return 2;
    }
  } catch (err) {
    if (err instanceof ConfigFolderError) {
      process.stderr.write(`meshgate ${command}: ${err.message}\n`);
      return 1;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`meshgate ${command}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
