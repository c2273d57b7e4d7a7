import { parseArgs } from 'node:util';
import { gatewayDuration } from '../../shared/config/schemas/common.ts';
import { durationToMs } from '../../shared/config/duration.ts';
import { IdentityError } from '../../shared/identity/errors.ts';
import {
  DEFAULT_ADMIN_URL,
  JoinTokenApiError,
  requestJoinToken,
} from '../../shared/identity/join-token-client.ts';
import { JoinTokenStore } from '../../shared/identity/join-tokens.ts';
import { namespaceProblem, serviceAccountProblem } from '../../shared/identity/spiffe.ts';
import { UsageError } from './usage-error.ts';
import { TOKEN_USAGE } from './usage.ts';

/**
 * `meshgate token create …`: a join token for one identity, printed alone on stdout so that
 * `$(meshgate token create …)` captures it. With --data the token store in that folder is written
 * directly; otherwise the control plane's admin API is asked (default 127.0.0.1:15014).
 */
export async function runToken(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'create') throw new UsageError(`expected a subcommand\nusage: ${TOKEN_USAGE}`);
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: false,
      options: {
        namespace: { type: 'string' },
        'service-account': { type: 'string' },
        ttl: { type: 'string', default: '24h' },
        data: { type: 'string' },
        'control-plane': { type: 'string' },
      },
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\nusage: ${TOKEN_USAGE}`);
  }
  const v = parsed.values;
  if (!v.namespace || !v['service-account'])
    throw new UsageError(`--namespace and --service-account are required\nusage: ${TOKEN_USAGE}`);
  const problem = namespaceProblem(v.namespace) ?? serviceAccountProblem(v['service-account']);
  if (problem) throw new UsageError(problem);
  if (v.data !== undefined && v['control-plane'] !== undefined)
    throw new UsageError(`give --data or --control-plane, not both\nusage: ${TOKEN_USAGE}`);
  if (!gatewayDuration.safeParse(v.ttl).success)
    throw new UsageError(`--ttl ${v.ttl}: expected a duration such as 24h, 90m or 1h30m`);
  const ttlMs = durationToMs(v.ttl);
  if (ttlMs < 1000) throw new UsageError(`--ttl ${v.ttl}: must be at least 1s`);
  const request = { namespace: v.namespace, serviceAccount: v['service-account'] };

  let token: string;
  let expiresAt: string;
  try {
    if (v.data !== undefined) {
      const created = await new JoinTokenStore(v.data).create({ ...request, ttlMs });
      token = created.token;
      expiresAt = created.expiresAt.toISOString();
    } else {
      ({ token, expiresAt } = await requestJoinToken(v['control-plane'] ?? DEFAULT_ADMIN_URL, {
        ...request,
        ttlSeconds: Math.ceil(ttlMs / 1000),
      }));
    }
  } catch (err) {
    if (err instanceof JoinTokenApiError || err instanceof IdentityError) {
      process.stderr.write(`meshgate token: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  process.stdout.write(`${token}\n`);
  // stderr, so that $(meshgate token create …) captures the token alone.
  process.stderr.write(
    `join token for namespace ${request.namespace}, service account ${request.serviceAccount}; expires ${expiresAt}\n`,
  );
  return 0;
}
