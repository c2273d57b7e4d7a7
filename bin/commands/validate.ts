import { parseArgs } from 'node:util';
import {
  allConditions,
  isProblem,
  type Condition,
  type ResourceStatus,
} from '../../shared/config/compile/conditions.ts';
import { formatConfigError } from '../../shared/config/errors.ts';
import { loadConfig } from '../../shared/config/load.ts';
import { formatLocation, type Resource } from '../../shared/config/resource.ts';
import { UsageError } from './usage-error.ts';

/** `meshgate validate DIR`: every resource with its conditions, every error; exit 1 on any error. */
export async function runValidate(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      json: { type: 'boolean', default: false },
      'root-namespace': { type: 'string' },
      'controller-name': { type: 'string' },
    },
  });
  const dir = positionals[0];
  if (!dir || positionals.length > 1) throw new UsageError('usage: meshgate validate DIR [--json]');
  const loaded = await loadConfig(dir, {
    ...(values['root-namespace'] ? { rootNamespace: values['root-namespace'] } : {}),
    ...(values['controller-name'] ? { controllerName: values['controller-name'] } : {}),
  });
  const statusByKey = new Map(loaded.statuses.map((s) => [statusKey(s), s]));
  const entries = loaded.parse.resources.map((r) => ({
    resource: r,
    status: statusByKey.get(resourceStatusKey(r)),
  }));
  // Envoy Gateway writes no ancestor for a policy whose targets do not exist; say so here.
  const orphanPolicies = loaded.statuses.filter(
    (s) =>
      POLICY_KINDS.has(s.kind) &&
      Array.isArray(s.status.ancestors) &&
      s.status.ancestors.length === 0,
  );
  const problems =
    loaded.statuses.flatMap((s) => allConditions(s.status).filter(isProblem)).length +
    orphanPolicies.length;
  const failed = loaded.parse.errors.length > 0 || problems > 0;

  if (values.json) {
    const out: unknown[] = entries.map(({ resource: r, status }) => ({
      apiVersion: r.apiVersion,
      kind: r.kind,
      metadata: {
        ...(r.metadata.namespace ? { namespace: r.metadata.namespace } : {}),
        name: r.metadata.name,
        generation: r.metadata.generation ?? 1,
      },
      status: status?.status ?? {},
    }));
    for (const e of loaded.parse.errors)
      out.push({
        error: {
          file: e.location.file,
          doc: e.location.doc,
          line: e.location.line,
          column: e.location.col,
          path: e.path,
          message: e.message,
        },
      });
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return failed ? 1 : 0;
  }

  const lines: string[] = [];
  for (const { resource: r, status } of entries) {
    if (
      !status ||
      Object.keys(status.status).length === 0 ||
      r.kind === 'Service' ||
      r.kind === 'Namespace'
    )
      continue;
    lines.push(
      `${r.kind} ${r.metadata.namespace ? `${r.metadata.namespace}/` : ''}${r.metadata.name}  (${formatLocation(r.source)})`,
    );
    lines.push(...describeStatus(r.kind, status.status));
    if (
      POLICY_KINDS.has(r.kind) &&
      Array.isArray(status.status.ancestors) &&
      status.status.ancestors.length === 0
    )
      lines.push(
        '  ✗ no target found: none of its targetRefs or targetSelectors names an existing resource of meshgate',
      );
  }
  const quiet = loaded.parse.resources.filter(
    (r) => !statusByKey.get(resourceStatusKey(r)) || ['Service', 'Namespace'].includes(r.kind),
  );
  if (quiet.length > 0)
    lines.push(`${quiet.length} other resources loaded (${summarizeKinds(quiet)})`);
  if (loaded.parse.ignored.length > 0) {
    lines.push('', `Ignored (${loaded.parse.ignored.length}):`);
    for (const i of loaded.parse.ignored)
      lines.push(
        `  ${formatLocation(i.location)} ${i.kind}${i.name ? `/${i.name}` : ''}: ${i.reason}`,
      );
  }
  if (loaded.parse.errors.length > 0) {
    lines.push('', `Errors (${loaded.parse.errors.length}):`);
    for (const e of loaded.parse.errors) lines.push(`  ${formatConfigError(e)}`);
  }
  lines.push(
    '',
    `snapshot ${loaded.snapshot.version}: ${loaded.snapshot.gateways.length} gateways, ${loaded.snapshot.routes.length} routes, ${loaded.snapshot.services.length} services; ${loaded.parse.errors.length} errors, ${problems} conditions reporting problems`,
  );
  process.stdout.write(`${lines.join('\n')}\n`);
  return failed ? 1 : 0;
}

const POLICY_KINDS = new Set(['SecurityPolicy', 'BackendTrafficPolicy', 'ClientTrafficPolicy']);

function statusKey(s: ResourceStatus): string {
  return `${s.kind}/${s.metadata.namespace ?? ''}/${s.metadata.name}`;
}

function resourceStatusKey(r: Resource): string {
  return `${r.kind}/${r.metadata.namespace}/${r.metadata.name}`;
}

function summarizeKinds(rs: readonly Resource[]): string {
  const counts = new Map<string, number>();
  for (const r of rs) counts.set(r.kind, (counts.get(r.kind) ?? 0) + 1);
  return [...counts].map(([k, n]) => `${n} ${k}`).join(', ');
}

function conditionLine(c: Condition, indent: string): string {
  const mark = isProblem(c) ? '✗' : '✓';
  return `${indent}${mark} ${c.type}=${c.status} (${c.reason}): ${c.message}`;
}

function describeStatus(kind: string, status: Record<string, unknown>): string[] {
  const lines: string[] = [];
  const conds = (status.conditions ?? []) as Condition[];
  for (const c of conds) lines.push(conditionLine(c, '  '));
  for (const l of (status.listeners ?? []) as {
    name: string;
    attachedRoutes: number;
    conditions: Condition[];
  }[]) {
    lines.push(
      `  listener ${l.name}: ${l.attachedRoutes} attached route${l.attachedRoutes === 1 ? '' : 's'}`,
    );
    for (const c of l.conditions)
      if (isProblem(c) || kind !== 'Gateway' || c.type === 'Accepted')
        lines.push(conditionLine(c, '    '));
  }
  for (const p of (status.parents ?? []) as {
    parentRef: {
      kind?: string;
      namespace?: string;
      name: string;
      sectionName?: string;
      port?: number;
    };
    conditions: Condition[];
  }[]) {
    const r = p.parentRef;
    lines.push(
      `  parent ${r.kind ?? 'Gateway'} ${r.namespace ? `${r.namespace}/` : ''}${r.name}${r.sectionName ? ` section ${r.sectionName}` : ''}${r.port ? ` port ${r.port}` : ''}`,
    );
    for (const c of p.conditions) lines.push(conditionLine(c, '    '));
  }
  for (const a of (status.ancestors ?? []) as {
    ancestorRef: { kind?: string; namespace?: string; name: string; sectionName?: string };
    conditions: Condition[];
  }[]) {
    const r = a.ancestorRef;
    lines.push(
      `  ancestor ${r.kind ?? 'Gateway'} ${r.namespace ? `${r.namespace}/` : ''}${r.name}${r.sectionName ? ` section ${r.sectionName}` : ''}`,
    );
    for (const c of a.conditions) lines.push(conditionLine(c, '    '));
  }
  return lines;
}
