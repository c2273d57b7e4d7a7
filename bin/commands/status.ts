import { parseArgs } from 'node:util';
import type { ProxyStatus } from '../../shared/discovery/protocol.ts';
import { DEFAULT_ADMIN_URL } from '../../shared/identity/join-token-client.ts';
import type { ControlPlaneStatus } from '../../mesh/control-plane/admin-server.ts';
import { UsageError } from './usage-error.ts';
import { STATUS_USAGE } from './usage.ts';

/**
 * `meshgate status`: GET /status on the control plane's admin API; every connected proxy with
 * the version it acknowledged against the latest one computed for it (SYNCED, STALE, or NACKED
 * with the proxy's reason), and its certificate's expiry.
 */
export async function runStatus(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: false,
      options: {
        'control-plane': { type: 'string', default: DEFAULT_ADMIN_URL },
        json: { type: 'boolean', default: false },
      },
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\nusage: ${STATUS_USAGE}`);
  }
  const base = parsed.values['control-plane'];
  let url: URL;
  try {
    const b = new URL(base);
    if (b.protocol !== 'http:' && b.protocol !== 'https:') throw new Error('scheme');
    url = new URL(`${b.pathname.replace(/\/+$/, '')}/status`, b);
  } catch {
    throw new UsageError(
      `--control-plane ${base}: expected an http:// URL such as ${DEFAULT_ADMIN_URL}`,
    );
  }
  let status: ControlPlaneStatus;
  try {
    const res = await fetch(url, {
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    if (!res.ok) {
      process.stderr.write(
        `meshgate status: ${url.href} answered ${res.status}: ${text.slice(0, 500)}\n`,
      );
      return 1;
    }
    status = JSON.parse(text) as ControlPlaneStatus;
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause;
    process.stderr.write(
      `meshgate status: cannot read ${url.href} (${cause?.code ?? (err as Error).message}); is \`meshgate control-plane\` running there?\n`,
    );
    return 1;
  }
  if (parsed.values.json) {
    process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
    return 0;
  }
  process.stdout.write(formatStatus(status));
  return 0;
}

const short = (v: string | undefined) => (v ? v.slice(0, 12) : '-');

export function formatStatus(status: ControlPlaneStatus): string {
  const lines = [`config ${status.version ?? '(none)'} loaded ${status.loadedAt ?? '-'}`];
  if (status.rejected) {
    lines.push(
      `last reload REJECTED at ${status.rejected.at}; proxies keep the last good view:`,
      ...status.rejected.errors.map(
        (e) => `  ${e.location} ${e.path ? `${e.path}: ` : ''}${e.message}`,
      ),
    );
  }
  if (status.proxies.length === 0) {
    lines.push('no proxies connected');
    return `${lines.join('\n')}\n`;
  }
  const header = ['PROXY', 'KIND', 'IDENTITY', 'STATE', 'ACKED', 'LATEST', 'CERT EXPIRES'];
  const rows = status.proxies.map((p: ProxyStatus) => [
    p.proxyId,
    p.kind,
    p.identity,
    p.state,
    short(p.ackedVersion),
    short(p.latestVersion),
    p.certificateExpiry ?? '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const format = (cells: string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ');
  lines.push('', format(header));
  status.proxies.forEach((p, i) => {
    lines.push(format(rows[i] as string[]));
    if (p.state === 'NACKED')
      lines.push(`  NACK of ${short(p.latestVersion)}: ${p.nackError ?? ''}`);
  });
  return `${lines.join('\n')}\n`;
}
