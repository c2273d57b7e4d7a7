// The identity layer's coded errors. Each says whether it can reach a client of the control plane
// (a proxy asking for a certificate or redeeming a join token) and with which HTTP status.

export interface IdentityErrorDefinition {
  /** The HTTP status the control plane answers with when the error reaches a client. */
  status: number;
  title: string;
}

export const IDENTITY_ERRORS = {
  MG_ERR_SPIFFE_ID_INVALID: { status: 400, title: 'The SPIFFE id or principal is not valid' },
  MG_ERR_CSR_INVALID: {
    status: 400,
    title: 'The certificate signing request cannot be accepted',
  },
  MG_ERR_CA_ROOT_INVALID: { status: 500, title: 'The mesh CA root cannot be used' },
  MG_ERR_PEER_IDENTITY: {
    status: 403,
    title: 'The peer certificate does not carry an accepted identity',
  },
  MG_ERR_JOIN_TOKEN_INVALID: { status: 401, title: 'The join token is unknown or has expired' },
  MG_ERR_JOIN_TOKEN_STORE: { status: 500, title: 'The join token store cannot be read or written' },
} as const satisfies Record<string, IdentityErrorDefinition>;

export type IdentityErrorCode = keyof typeof IDENTITY_ERRORS;

/** An identity failure raised where it happens; `code` says which, `detail` says why. */
export class IdentityError extends Error {
  readonly definition: IdentityErrorDefinition;
  constructor(
    readonly code: IdentityErrorCode,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(
      `${code}: ${detail}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = 'IdentityError';
    this.definition = IDENTITY_ERRORS[code];
  }
}
