import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { meshgate, REPO } from '../helpers/cli.ts';
import { killExampleScripts, listening, startExampleScript } from '../helpers/example-script.ts';
import { killGateways, startGateway } from '../helpers/gateway-process.ts';
import { canBind, findPortOffset } from '../helpers/ports.ts';
import { checkExpectation, parseReadmeTries, TryRunner } from '../helpers/try-lines.ts';

// examples/edge-basic as its README runs it: the sample upstreams on the EndpointSlices' ports,
// `meshgate gateway --config examples/edge-basic` (on a free port offset rather than the
// README's 10000), and every line of the README's "Try it" section, checked against its
// `# expect`.

const EXAMPLE = join(REPO, 'examples/edge-basic');
let runner: TryRunner;

beforeAll(async () => {
  for (const port of [9101, 9102, 9103])
    if (!(await canBind(port)))
      throw new Error(
        `127.0.0.1:${port} is taken; examples/edge-basic/upstreams.ts needs it (is it running?)`,
      );
  const upstreams = startExampleScript('examples/edge-basic/upstreams.ts');
  await listening(upstreams, 3);
  const offset = await findPortOffset([8080]);
  const gw = startGateway(['--config', EXAMPLE, '--port-offset', String(offset), '--workers', '1']);
  await gw.ready();
  const { vars } = parseReadmeTries(readFileSync(join(EXAMPLE, 'README.md'), 'utf8'));
  expect(vars.GW).toBe('http://127.0.0.1:18080');
  runner = new TryRunner({ ...vars, GW: `http://127.0.0.1:${8080 + offset}` });
}, 60_000);

afterAll(async () => {
  await runner?.close();
  await killGateways();
  await killExampleScripts();
});

describe('examples/edge-basic', () => {
  it('validates, and every request of route-checks.jsonl reaches the rule it names', async () => {
    expect((await meshgate(['validate', EXAMPLE])).code).toBe(0);
    const explained = await meshgate([
      'explain',
      EXAMPLE,
      '--requests',
      join(EXAMPLE, 'route-checks.jsonl'),
    ]);
    expect(explained.stderr).toBe('');
    expect(explained.code).toBe(0);
  });

  it('does what the README says, line by line', async () => {
    const { tries } = parseReadmeTries(readFileSync(join(EXAMPLE, 'README.md'), 'utf8'));
    expect(tries.length).toBeGreaterThanOrEqual(5);
    const failures: string[] = [];
    for (const t of tries) {
      const problem = checkExpectation(t.expect, await runner.run(t.command));
      if (problem) failures.push(`${t.title}\n  ${t.command}\n  ${problem}`);
    }
    expect(failures).toEqual([]);
  });
});
