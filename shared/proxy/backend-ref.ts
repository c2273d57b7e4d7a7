// The backendRef a request goes to, for every stack: one of the rule's backendRefs by weight (a
// canary split), refused when the rule has none, the ref cannot be used, or its own filters fail
// closed. A ref's redirect is the caller's to answer (each stack has its own answerRedirect).

import type { WeightedPicker } from '../backend/weighted-pick.ts';
import { ProxyError, type ProxyErrorCode } from './errors.ts';

export interface RuleBackends<B> {
  /** How errors name the rule. */
  id: string;
  hasBackends: boolean;
  backends: WeightedPicker<B>;
}

export interface BackendRefState {
  /** "namespace/name:port". */
  key: string;
  invalid?: string;
  failure?: { code: ProxyErrorCode; detail: string };
}

export function pickBackendRef<B extends BackendRefState>(
  rule: RuleBackends<B>,
  random: () => number,
): B {
  if (!rule.hasBackends) throw new ProxyError('MG_ERR_NO_BACKEND', `${rule.id} has no backendRefs`);
  const backend = rule.backends.pick(random);
  if (!backend)
    throw new ProxyError('MG_ERR_NO_BACKEND', `every backendRef of ${rule.id} has weight 0`);
  if (backend.invalid)
    throw new ProxyError('MG_ERR_INVALID_BACKEND', `${backend.key}: ${backend.invalid}`);
  if (backend.failure) throw new ProxyError(backend.failure.code, backend.failure.detail);
  return backend;
}
