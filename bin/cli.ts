import { ConfigFolderError } from '../shared/config/load.ts';
import { CONTROL_PLANE_USAGE, runControlPlane } from './commands/control-plane.ts';
import { DEMO_USAGE, runDemo } from './commands/demo.ts';
import { runExplain } from './commands/explain.ts';
import { GATEWAY_USAGE, runGateway } from './commands/gateway.ts';
import { SIDECAR_USAGE, runSidecar } from './commands/sidecar.ts';
import { STATUS_USAGE, runStatus } from './commands/status.ts';
import { TOKEN_USAGE, runToken } from './commands/token.ts';
import { UsageError } from './commands/usage-error.ts';
import { runValidate } from './commands/validate.ts';

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
        return await runValidate(rest);
      case 'explain':
        return await runExplain(rest);
      case 'gateway':
        return await runGateway(rest);
      case 'sidecar':
        return await runSidecar(rest);
      case 'token':
        return await runToken(rest);
      case 'control-plane':
        return await runControlPlane(rest);
      case 'status':
        return await runStatus(rest);
      case 'demo':
        return await runDemo(rest);
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
