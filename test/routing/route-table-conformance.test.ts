// The request → backend pairs of upstream conformance tests (kubernetes-sigs/gateway-api
// conformance/tests/*.go), run against the route table built from the same manifests.

import { describe, expect, it } from 'vitest';
import { compileRouteTable } from '../../shared/routing/route-table.ts';
import { entriesForGateway, loadManifests } from './conformance-fixtures.ts';
import { routeRequest, type TestRequest } from './request.ts';

type Case = [TestRequest, string | 404];

function run(manifest: string, gateway: string, cases: Case[]): void {
  const docs = loadManifests('base/manifests.yaml', `tests/${manifest}`);
  const table = compileRouteTable(entriesForGateway(docs, gateway));
  it.each(cases)('%j → %s', (req, want) => {
    const m = table.match(routeRequest(req));
    expect(m ? (m.rule.backends[0]?.name ?? 'no-backend') : 404).toBe(want);
    // explain must agree with the fast path on every conformance request too.
    const e = table.explain(routeRequest(req));
    expect(e.winner?.rule).toBe(m?.rule);
  });
}

const v1 = 'infra-backend-v1';
const v2 = 'infra-backend-v2';
const v3 = 'infra-backend-v3';

describe('HTTPRouteMatching', () => {
  run('httproute-matching.yaml', 'same-namespace', [
    [{ path: '/' }, v1],
    [{ path: '/example' }, v1],
    [{ path: '/', headers: { Version: 'one' } }, v1],
    [{ path: '/v2' }, v2],
    [{ path: '/v2/example' }, v2],
    [{ path: '/', headers: { Version: 'two' } }, v2],
  ]);
});

describe('HTTPRouteMatchingAcrossRoutes', () => {
  run('httproute-matching-across-routes.yaml', 'same-namespace', [
    [{ host: 'example.com', path: '/' }, v1],
    [{ host: 'example.com', path: '/example' }, v1],
    [{ host: 'example.net', path: '/example' }, v1],
    [{ host: 'example.com', path: '/example', headers: { Version: 'one' } }, v1],
    [{ host: 'example.com', path: '/v2' }, v2],
    // "v2 matches are limited to example.com"
    [{ host: 'example.net', path: '/v2' }, v1],
    [{ host: 'example.com', path: '/v2/example' }, v2],
    [{ host: 'example.com', path: '/', headers: { Version: 'two' } }, v2],
  ]);
});

describe('HTTPRouteHostnameIntersection', () => {
  run('httproute-hostname-intersection.yaml', 'httproute-hostname-intersection', [
    // specific-host-matches-listener-specific-host
    [{ host: 'very.specific.com', path: '/s1' }, v1],
    // "Port value within the Host header MUST not be considered while performing match"
    [{ host: 'very.specific.com:1234', path: '/s1' }, v1],
    [{ host: 'non.matching.com', path: '/s1' }, 404],
    [{ host: 'foo.nonmatchingwildcard.io', path: '/s1' }, 404],
    [{ host: 'foo.wildcard.io', path: '/s1' }, 404],
    [{ host: 'very.specific.com', path: '/non-matching-prefix' }, 404],
    // specific-host-matches-listener-wildcard-host
    [{ host: 'foo.wildcard.io', path: '/s2' }, v2],
    [{ host: 'bar.wildcard.io', path: '/s2' }, v2],
    [{ host: 'foo.bar.wildcard.io', path: '/s2' }, v2],
    [{ host: 'non.matching.com', path: '/s2' }, 404],
    [{ host: 'wildcard.io', path: '/s2' }, 404],
    [{ host: 'very.specific.com', path: '/s2' }, 404],
    [{ host: 'foo.wildcard.io', path: '/non-matching-prefix' }, 404],
    // wildcard-host-matches-listener-specific-host
    [{ host: 'very.specific.com', path: '/s3' }, v3],
    [{ host: 'non.matching.com', path: '/s3' }, 404],
    [{ host: 'foo.specific.com', path: '/s3' }, 404],
    [{ host: 'foo.wildcard.io', path: '/s3' }, 404],
    [{ host: 'very.specific.com', path: '/non-matching-prefix' }, 404],
    // wildcard-host-matches-listener-wildcard-host
    [{ host: 'foo.anotherwildcard.io', path: '/s4' }, v1],
    [{ host: 'bar.anotherwildcard.io', path: '/s4' }, v1],
    [{ host: 'foo.bar.anotherwildcard.io', path: '/s4' }, v1],
    [{ host: 'anotherwildcard.io', path: '/s4' }, 404],
    [{ host: 'foo.wildcard.io', path: '/s4' }, 404],
    [{ host: 'very.specific.com', path: '/s4' }, 404],
    [{ host: 'foo.anotherwildcard.io', path: '/non-matching-prefix' }, 404],
    // no-intersecting-hosts is not attached
    [{ host: 'specific.but.wrong.com', path: '/s5' }, 404],
    [{ host: 'wildcard.io', path: '/s5' }, 404],
  ]);
});

describe('HTTPRouteHostnameIntersection (listener without hostname)', () => {
  run('httproute-hostname-intersection.yaml', 'httproute-hostname-intersection-all', [
    [{ host: 'first.com', path: '/' }, v2],
    [{ host: 'sub.first.com', path: '/' }, v2],
    [{ host: 'second.com', path: '/' }, v2],
    [{ host: 'sub.second.com', path: '/' }, v2],
    [{ host: 'third.com', path: '/' }, 404],
    [{ host: 'sub.third.com', path: '/' }, 404],
  ]);
});

describe('HTTPRouteListenerHostnameMatching', () => {
  run('httproute-listener-hostname-matching.yaml', 'httproute-listener-hostname-matching', [
    [{ host: 'bar.com', path: '/' }, v1],
    [{ host: 'foo.bar.com', path: '/' }, v2],
    [{ host: 'baz.bar.com', path: '/' }, v3],
    [{ host: 'boo.bar.com', path: '/' }, v3],
    [{ host: 'multiple.prefixes.bar.com', path: '/' }, v3],
    [{ host: 'multiple.prefixes.foo.com', path: '/' }, v3],
    [{ host: 'foo.com', path: '/' }, 404],
    [{ host: 'no.matching.host', path: '/' }, 404],
  ]);
});

describe('HTTPRouteExactPathMatching', () => {
  run('httproute-exact-path-matching.yaml', 'same-namespace', [
    [{ path: '/one' }, v1],
    [{ path: '/two' }, v2],
    [{ path: '/' }, 404],
    [{ path: '/one/example' }, 404],
    [{ path: '/two/' }, 404],
  ]);
});

describe('HTTPRoutePathMatchOrder', () => {
  run('httproute-path-match-order.yaml', 'same-namespace', [
    [{ path: '/match/exact/one' }, v3],
    [{ path: '/match/exact' }, v2],
    [{ path: '/match' }, v1],
    [{ path: '/match/prefix/one/any' }, v2],
    [{ path: '/match/prefix/any' }, v1],
    [{ path: '/match/any' }, v3],
  ]);
});

describe('HTTPRouteHeaderMatching', () => {
  run('httproute-header-matching.yaml', 'same-namespace', [
    [{ path: '/', headers: { Version: 'one' } }, v1],
    [{ path: '/', headers: { Version: 'two' } }, v2],
    [{ path: '/', headers: { Version: 'two', Color: 'orange' } }, v1],
    [{ path: '/', headers: { Version: 'two', Color: 'blue' } }, v2],
    [{ path: '/', headers: { Color: 'orange' } }, 404],
    [{ path: '/', headers: { 'Some-Other-Header': 'one' } }, 404],
    [{ path: '/', headers: { Color: 'blue' } }, v1],
    [{ path: '/', headers: { Color: 'green' } }, v1],
    [{ path: '/', headers: { Color: 'red' } }, v2],
    [{ path: '/', headers: { Color: 'yellow' } }, v2],
    [{ path: '/', headers: { Color: 'purple' } }, 404],
  ]);
});

describe('HTTPRouteMethodMatching', () => {
  run('httproute-method-matching.yaml', 'same-namespace', [
    [{ method: 'POST', path: '/' }, v1],
    [{ method: 'GET', path: '/' }, v2],
    [{ method: 'HEAD', path: '/' }, 404],
    [{ method: 'GET', path: '/path1' }, v1],
    [{ method: 'PUT', path: '/', headers: { version: 'one' } }, v2],
    [{ method: 'POST', path: '/path2', headers: { version: 'two' } }, v3],
    [{ method: 'PATCH', path: '/path3' }, v1],
    [{ method: 'DELETE', path: '/path4', headers: { version: 'three' } }, v1],
    [{ method: 'PUT', path: '/' }, 404],
    [{ method: 'DELETE', path: '/path4' }, 404],
    // precedence: longer prefix beats method; method beats header
    [{ method: 'PATCH', path: '/path5' }, v1],
    [{ method: 'PATCH', path: '/', headers: { version: 'four' } }, v2],
  ]);
});

describe('HTTPRouteQueryParamMatching', () => {
  run('httproute-query-param-matching.yaml', 'same-namespace', [
    [{ path: '/?animal=whale' }, v1],
    [{ path: '/?animal=dolphin' }, v2],
    [{ path: '/?animal=dolphin&color=blue' }, v3],
    [{ path: '/?ANIMAL=Whale' }, v3],
    [{ path: '/?animal=whale&otherparam=irrelevant' }, v1],
    [{ path: '/?animal=dolphin&color=yellow' }, v2],
    [{ path: '/?color=blue' }, 404],
    [{ path: '/?animal=dog' }, 404],
    [{ path: '/?animal=whaledolphin' }, 404],
    [{ path: '/' }, 404],
    [{ path: '/path1?animal=whale' }, v1],
    [{ path: '/?animal=whale', headers: { version: 'one' } }, v2],
    [{ path: '/path2?animal=whale', headers: { version: 'two' } }, v3],
    [{ path: '/path3?animal=shark' }, v1],
    [{ path: '/path4?animal=kraken', headers: { version: 'three' } }, v1],
    [{ path: '/?animal=shark' }, 404],
    [{ path: '/path4?animal=kraken' }, 404],
    // precedence: longer prefix beats query; header beats query
    [{ path: '/path5?animal=hydra' }, v1],
    [{ path: '/?animal=hydra', headers: { version: 'four' } }, v3],
  ]);
});
