import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JoinTokenStore } from '../../shared/identity/join-tokens.ts';
import { meshgate, REPO } from '../helpers/cli.ts';
import { killControlPlanes, startControlPlaneProcess } from '../helpers/control-plane-process.ts';
import { killExampleScripts, listening, startExampleScript } from '../helpers/example-script.ts';
import { canBind } from '../helpers/ports.ts';
import { killSidecars, startSidecar, type SidecarProcess } from '../helpers/sidecar-process.ts';
import { checkExpectation, parseReadmeTries, TryRunner } from '../helpers/try-lines.ts';

// examples/mesh-only as its README runs it: `meshgate control-plane --config examples/mesh-only`,
// the apps of apps.ts on their targetPorts, a join token per identity, and a sidecar per
// instance (on ports the kernel picks rather than the README's 15xxx); then every line of the
// README's "Try it" section, checked against its `# expect`.

const EXAMPLE = join(REPO, 'examples/mesh-only');
let data: string;
let runner: TryRunner;

beforeAll(async () => {
  for (const port of [9201, 9202, 9203])
    if (!(await canBind(port)))
      throw new Error(
        `127.0.0.1:${port} is taken; examples/mesh-only/apps.ts needs it (is it running?)`,
      );
  data = await mkdtemp(join(tmpdir(), 'meshgate-mesh-only-'));
  const cp = startControlPlaneProcess(['--config', EXAMPLE, '--data', data]);
  const { discoveryPort, adminPort } = await cp.ports();
  const apps = startExampleScript('examples/mesh-only/apps.ts');
  await listening(apps, 3);
  const store = new JoinTokenStore(data);
  const access = {
    discoveryUrl: `https://127.0.0.1:${discoveryPort}`,
    rootPem: await readFile(join(data, 'ca/root-cert.pem'), 'utf8'),
    async tokenFile(namespace: string, serviceAccount: string) {
      const { token } = await store.create({ namespace, serviceAccount });
      await mkdir(join(data, 'tokens'), { recursive: true });
      const file = join(data, 'tokens', serviceAccount);
      await writeFile(file, `${token}\n`, { mode: 0o600 });
      return file;
    },
  };
  const start = (
    serviceAccount: string,
    service: string,
    appPort: number,
    labels: Record<string, string>,
  ) =>
    startSidecar(access, {
      service,
      namespace: 'shop',
      serviceAccount,
      appPort,
      labels,
      accessLog: 'off',
    });
  const web = await start('web', 'web', 9201, { app: 'web' });
  const v1 = await start('api-v1', 'api', 9202, { app: 'api', version: 'v1' });
  const v2 = await start('api-v2', 'api', 9203, { app: 'api', version: 'v2' });
  await Promise.all([web, v1, v2].map((s) => s.ready()));
  await web.meshEndpointsFor('shop/api-v1:8080', 'shop/api-v2:8080');
  const { vars } = parseReadmeTries(await readFile(join(EXAMPLE, 'README.md'), 'utf8'));
  expect(Object.keys(vars).sort()).toEqual(['API_INBOUND', 'CP', 'WEB']);
  runner = new TryRunner({
    WEB: `http://127.0.0.1:${(await web.ports()).outbound}`,
    API_INBOUND: `127.0.0.1:${(await (v1 as SidecarProcess).ports()).inbound}`,
    CP: `http://127.0.0.1:${adminPort}`,
  });
}, 60_000);

afterAll(async () => {
  await runner?.close();
  await killSidecars();
  await killControlPlanes();
  await killExampleScripts();
  if (data) await rm(data, { recursive: true, force: true });
});

describe('examples/mesh-only', () => {
  it('validates', async () => {
    expect((await meshgate(['validate', EXAMPLE])).code).toBe(0);
  });

  it('does what the README says, line by line', async () => {
    const { tries } = parseReadmeTries(await readFile(join(EXAMPLE, 'README.md'), 'utf8'));
    expect(tries.length).toBeGreaterThanOrEqual(6);
    const failures: string[] = [];
    for (const t of tries) {
      const problem = checkExpectation(t.expect, await runner.run(t.command));
      if (problem) failures.push(`${t.title}\n  ${t.command}\n  ${problem}`);
    }
    expect(failures).toEqual([]);
  }, 30_000);
});
