import { describe, expect, it } from 'vitest';
import type { SecurityPolicySpec } from '../../../shared/config/schemas/envoy-gateway.ts';
import { deriveSecurity, securedDocument } from '../../../gateway/openapi/published-document.ts';
import { PathTemplates } from '../../../gateway/openapi/path-templates.ts';

// What the published document says about security, from what the gateway enforces; and the
// path template matcher the enforcement layer looks operations up with.

const jwt = (extra: Record<string, unknown> = {}) =>
  ({
    providers: [{ name: 'idp', issuer: 'https://idp.test', localJWKS: { inline: '{}' }, ...extra }],
  }) as unknown as SecurityPolicySpec['jwt'];

describe('deriveSecurity', () => {
  it('makes an optional JWT optional', () => {
    const s = deriveSecurity({ jwt: { ...jwt(), optional: true } } as SecurityPolicySpec, []);
    expect(s.requirements).toEqual([{ bearerAuth: [] }, { jwtQuery_access_token: [] }, {}]);
  });

  it('follows extractFrom: a custom header, a cookie and a query parameter', () => {
    const s = deriveSecurity(
      {
        jwt: jwt({
          extractFrom: {
            headers: [{ name: 'X-Token' }],
            cookies: ['session'],
            params: ['token'],
          },
        }),
      } as SecurityPolicySpec,
      [],
    );
    expect(Object.entries(s.schemes).map(([k, v]) => [k, v.in, v.name])).toEqual([
      ['jwtHeader_X-Token', 'header', 'X-Token'],
      ['jwtCookie_session', 'cookie', 'session'],
      ['jwtQuery_token', 'query', 'token'],
    ]);
  });

  it('adds OpenID Connect discovery for an oidc policy', () => {
    const s = deriveSecurity(
      {
        oidc: { provider: { issuer: 'https://login.example.com/' } },
      } as unknown as SecurityPolicySpec,
      ['shop/login'],
    );
    expect(s.schemes.openIdConnect).toEqual({
      type: 'openIdConnect',
      openIdConnectUrl: 'https://login.example.com/.well-known/openid-configuration',
    });
    expect(s.requirements).toEqual([{ openIdConnect: [] }]);
  });

  it('describes token introspection as oauth2 with the scopes it requires', () => {
    const s = deriveSecurity(undefined, [], {
      endpoint: 'https://as.internal/introspect',
      requiredScopes: ['orders.read'],
    });
    expect(s.schemes.oauth2).toMatchObject({ type: 'oauth2', flows: {} });
    expect(JSON.stringify(s.schemes)).not.toContain('as.internal');
    expect(s.requirements).toEqual([{ oauth2: ['orders.read'] }]);
  });

  it('describes nothing for a policy that fails closed', () => {
    const s = deriveSecurity({ invalid: { message: 'x' } } as never, ['shop/broken']);
    expect(s).toEqual({ schemes: {}, requirements: [], policies: ['shop/broken'] });
  });
});

describe('securedDocument', () => {
  it('puts security on each operation when the rules that serve them differ', () => {
    const doc = {
      openapi: '3.1.0',
      info: { title: 'T', version: '1' },
      paths: {
        '/public': { get: { security: [{ old: [] }], responses: {} } },
        '/private': { get: { responses: {} } },
      },
    };
    const secured = securedDocument(doc, (_method, template) =>
      template === '/private'
        ? deriveSecurity({ jwt: jwt() } as SecurityPolicySpec, ['shop/auth'])
        : deriveSecurity(undefined, []),
    ) as { security: unknown; paths: Record<string, { get: { security?: unknown } }> };
    expect(secured.security).toEqual([]);
    expect(secured.paths['/public']?.get.security).toEqual([]);
    expect(secured.paths['/private']?.get.security).toEqual([
      { bearerAuth: [] },
      { jwtQuery_access_token: [] },
    ]);
    // The input is the view's copy of the snapshot: never changed.
    expect(doc.paths['/public'].get.security).toEqual([{ old: [] }]);
  });
});

describe('PathTemplates', () => {
  const t = new PathTemplates<string>([
    ['/pets/{id}', 'one'],
    ['/pets/mine', 'mine'],
    ['/files/{name}.{ext}', 'file'],
    ['/', 'root'],
  ]);

  it('matches concrete paths before templated ones, and decodes parameters', () => {
    expect(t.match('/pets/mine')).toMatchObject({ value: 'mine', params: {} });
    expect(t.match('/pets/a%20b')).toMatchObject({ value: 'one', params: { id: 'a b' } });
    expect(t.match('/files/report.final.pdf')).toMatchObject({
      value: 'file',
      params: { name: 'report', ext: 'final.pdf' },
    });
    expect(t.match('/')).toMatchObject({ value: 'root' });
  });

  it('takes a trailing slash as the path without it, and nothing else', () => {
    expect(t.match('/pets/7/')).toMatchObject({ value: 'one', params: { id: '7' } });
    expect(t.match('/pets')).toBeUndefined();
    expect(t.match('/pets/7/photos')).toBeUndefined();
  });
});
