import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { meshgate, REPO } from '../helpers/cli.ts';
import { killExampleScripts, listening, startExampleScript } from '../helpers/example-script.ts';
import { killGateways, startGateway } from '../helpers/gateway-process.ts';
import { canBind, findPortOffset } from '../helpers/ports.ts';
import { checkExpectation, parseReadmeTries, TryRunner } from '../helpers/try-lines.ts';

// examples/multi-tenant-edge as its README runs it: issuers.ts (two tenants' JWKS, the orders
// API, a token per consumer, keys made at start), the gateway on the folder (on a free port
// offset), and every line of the README's "Try it" section with the tokens issuers.ts printed.

const EXAMPLE = join(REPO, 'examples/multi-tenant-edge');
let runner: TryRunner;

beforeAll(async () => {
  for (const port of [9401, 9402])
    if (!(await canBind(port)))
      throw new Error(
        `127.0.0.1:${port} is taken; examples/multi-tenant-edge/issuers.ts needs it (is it running?)`,
      );
  const issuers = startExampleScript('examples/multi-tenant-edge/issuers.ts');
  await listening(issuers, 2);
  await issuers.process.waitForLog(() => /export MALLORY=/.test(issuers.stdout), 'the tokens');
  const tokens: Record<string, string> = {};
  for (const m of issuers.stdout.matchAll(/^export (\w+)=(\S+)$/gm))
    tokens[m[1] as string] = m[2] as string;
  expect(Object.keys(tokens).sort()).toEqual(['ALICE', 'BOB', 'CAROL', 'MALLORY']);

  const offset = await findPortOffset([8080]);
  const gw = startGateway(['--config', EXAMPLE, '--port-offset', String(offset), '--workers', '1']);
  await gw.ready();
  const { vars } = parseReadmeTries(readFileSync(join(EXAMPLE, 'README.md'), 'utf8'));
  expect(vars.GW).toBe('http://127.0.0.1:18080');
  runner = new TryRunner({ ...vars, ...tokens, GW: `http://127.0.0.1:${8080 + offset}` });
}, 60_000);

afterAll(async () => {
  await runner?.close();
  await killGateways();
  await killExampleScripts();
});

describe('examples/multi-tenant-edge', () => {
  it('validates', async () => {
    const validated = await meshgate(['validate', EXAMPLE]);
    expect(validated.stdout).toContain('0 errors, 0 conditions reporting problems');
    expect(validated.code).toBe(0);
  });

  it('does what the README says, line by line', async () => {
    const { tries } = parseReadmeTries(readFileSync(join(EXAMPLE, 'README.md'), 'utf8'));
    expect(tries.length).toBeGreaterThanOrEqual(6);
    const failures: string[] = [];
    for (const t of tries) {
      const problem = checkExpectation(t.expect, await runner.run(t.command));
      if (problem) failures.push(`${t.title}\n  ${t.command}\n  ${problem}`);
    }
    expect(failures).toEqual([]);
  });
});
