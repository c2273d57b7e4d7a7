import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compile } from '../../shared/config/compile/compile.ts';
import { formatConfigError } from '../../shared/config/errors.ts';
import { listConfigFiles, parseTexts } from '../../shared/config/parse.ts';
import { formatLocation } from '../../shared/config/resource.ts';
import { selfSignedCertificate, tlsSecretYaml } from '../helpers/tls.ts';

// Golden cases: cases/NAME/in/*.yaml → cases/NAME/out/{snapshot.json,status.json,errors.txt}.
// `npm run golden:update` rewrites the out/ files; review them as diffs before committing.
// A case that needs TLS Secrets lists them in cases/NAME/tls-secrets.txt ("namespace/name dns,dns"):
// they are generated here, so no private key is ever committed, and their PEMs are redacted.

const CASES = join(import.meta.dirname, 'cases');
const UPDATE = process.env.UPDATE_GOLDEN === '1';
const NOW = new Date('2026-01-01T00:00:00Z');

async function runCase(dir: string) {
  const inDir = join(dir, 'in');
  const files = await listConfigFiles(inDir);
  const inputs = await Promise.all(
    files.map(async (f) => ({ file: relative(inDir, f), text: await readFile(f, 'utf8') })),
  );
  const tlsList = join(dir, 'tls-secrets.txt');
  if (existsSync(tlsList)) {
    for (const line of readFileSync(tlsList, 'utf8')
      .split('\n')
      .filter((l) => l.trim())) {
      const [ref, dns = 'example.com'] = line.trim().split(/\s+/);
      const [ns, name] = (ref as string).split('/');
      inputs.push({
        file: `generated/${ns}-${name}.yaml`,
        text: tlsSecretYaml(
          ns as string,
          name as string,
          selfSignedCertificate(dns.split(','), { bits: 1024 }),
        ),
      });
    }
  }
  const parsed = parseTexts(inputs);
  const result = compile(parsed.resources, { now: NOW });
  const snapshot = JSON.parse(JSON.stringify(result.snapshot)) as {
    version: string;
    tlsCertificates: { certPem: string; keyPem: string }[];
  };
  snapshot.version = '<version>';
  for (const c of snapshot.tlsCertificates) {
    c.certPem = '<generated>';
    c.keyPem = '<generated>';
  }
  const statuses = [...result.statuses].sort((a, b) => {
    const ka = `${a.kind}/${a.metadata.namespace ?? ''}/${a.metadata.name}`;
    const kb = `${b.kind}/${b.metadata.namespace ?? ''}/${b.metadata.name}`;
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
  const errors = [
    ...parsed.errors.map((e) => `error ${formatConfigError(e)}`),
    ...parsed.ignored.map(
      (i) =>
        `ignored ${formatLocation(i.location)} ${i.apiVersion} ${i.kind}${i.name ? `/${i.name}` : ''}: ${i.reason}`,
    ),
  ].join('\n');
  return {
    'snapshot.json': `${JSON.stringify(snapshot, null, 2)}\n`,
    'status.json': `${JSON.stringify(statuses, null, 2)}\n`,
    'errors.txt': errors ? `${errors}\n` : '',
  };
}

const cases = existsSync(CASES) ? readdirSync(CASES).sort() : [];

describe('golden: config compiler', () => {
  it('has cases', () => expect(cases.length).toBeGreaterThan(0));
  for (const name of cases) {
    it(name, async () => {
      const dir = join(CASES, name);
      const actual = await runCase(dir);
      const outDir = join(dir, 'out');
      if (UPDATE) {
        await mkdir(outDir, { recursive: true });
        for (const [file, text] of Object.entries(actual))
          await writeFile(join(outDir, file), text);
        return;
      }
      for (const [file, text] of Object.entries(actual)) {
        const path = join(outDir, file);
        expect(
          existsSync(path),
          `${relative(process.cwd(), path)} is missing; run npm run golden:update`,
        ).toBe(true);
        expect(text, `${name}/out/${file}`).toBe(readFileSync(path, 'utf8'));
      }
    });
  }
});
