// The control plane's coded errors: what a proxy (discovery port) or an operator (admin port) is
// told when a request is refused. Identity failures keep their own codes (shared/identity/errors.ts);
// both are answered as RFC 9457 problem+json by `problemOf`.

import { IdentityError } from '../../shared/identity/errors.ts';

export interface ControlPlaneErrorDefinition {
  status: number;
  title: string;
}

export const CONTROL_PLANE_ERRORS = {
  MG_ERR_CP_UNAUTHENTICATED: {
    status: 401,
    title: 'A client certificate from the mesh CA or a join token is required',
  },
  MG_ERR_CP_IDENTITY_MISMATCH: {
    status: 403,
    title: 'The hello names another identity than the client certificate',
  },
  MG_ERR_CP_FORBIDDEN: { status: 403, title: 'This identity may not do that' },
  MG_ERR_CP_BAD_REQUEST: { status: 400, title: 'The request body is not valid' },
  MG_ERR_CP_NOT_FOUND: { status: 404, title: 'No such resource' },
  MG_ERR_CP_UNKNOWN_PROXY: {
    status: 404,
    title: 'No stream is open for this proxy; open one with POST /v1/stream',
  },
  MG_ERR_CP_PROXY_ID_TAKEN: {
    status: 409,
    title: 'Another identity holds a stream with this proxy id',
  },
  MG_ERR_CP_BODY_TOO_LARGE: { status: 413, title: 'The request body is too large' },
  MG_ERR_CP_NOT_READY: { status: 503, title: 'The control plane has no config to serve yet' },
  MG_ERR_CP_SHUTTING_DOWN: { status: 503, title: 'The control plane is shutting down' },
  MG_ERR_CP_INTERNAL: { status: 500, title: 'Internal error in the control plane' },
} as const satisfies Record<string, ControlPlaneErrorDefinition>;

export type ControlPlaneErrorCode = keyof typeof CONTROL_PLANE_ERRORS;

export class ControlPlaneError extends Error {
  readonly definition: ControlPlaneErrorDefinition;
  constructor(
    readonly code: ControlPlaneErrorCode,
    readonly detail: string,
  ) {
    super(`${code}: ${detail}`);
    this.name = 'ControlPlaneError';
    this.definition = CONTROL_PLANE_ERRORS[code];
  }
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  instance?: string;
}

/** The problem+json body for an error; anything unexpected is a 500 that hides its message. */
export function problemOf(err: unknown, instance?: string): Problem {
  const make = (code: string, def: ControlPlaneErrorDefinition, detail: string): Problem => ({
    type: `https://meshgate.io/errors/${code}`,
    title: def.title,
    status: def.status,
    detail,
    code,
    ...(instance ? { instance } : {}),
  });
  if (err instanceof ControlPlaneError) return make(err.code, err.definition, err.detail);
  if (err instanceof IdentityError) return make(err.code, err.definition, err.detail);
  return make(
    'MG_ERR_CP_INTERNAL',
    CONTROL_PLANE_ERRORS.MG_ERR_CP_INTERNAL,
    'the control plane failed; see its log',
  );
}
