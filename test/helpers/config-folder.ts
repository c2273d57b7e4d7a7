// A temporary config folder for tests of the watched folder source and `meshgate gateway`.

import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';

export class ConfigFolder {
  private constructor(readonly dir: string) {}

  static async create(files: Record<string, string>): Promise<ConfigFolder> {
    const folder = new ConfigFolder(await mkdtemp(join(tmpdir(), 'meshgate-config-')));
    for (const [name, text] of Object.entries(files)) await folder.write(name, text);
    return folder;
  }

  /**
   * Replaces a file the way editors and `kubectl cp` do, by rename, so a reload never reads it
   * half-written (the temporary name starts with a dot: the source ignores it).
   */
  async write(name: string, text: string): Promise<void> {
    const target = join(this.dir, name);
    const tmp = join(dirname(target), `.${basename(target)}.tmp`);
    await writeFile(tmp, text);
    await rename(tmp, target);
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** An HTTPRoute in `namespace` attached to Gateway `gateway`, sending `path` to `backend` port 80. */
export function httpRouteYaml(options: {
  name: string;
  gateway: string;
  backend: string;
  namespace?: string;
  path?: string;
}): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${options.name}, namespace: ${options.namespace ?? 'default'} }
spec:
  parentRefs: [{ name: ${options.gateway} }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: ${options.path ?? '/'} } }]
      backendRefs: [{ name: ${options.backend}, port: 80 }]
`;
}
