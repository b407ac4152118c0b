import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePolicy, formatIssue } from '../../../src/policy/load.js';

function check(yaml: string): string[] {
  const r = parsePolicy(yaml, 'p.yaml');
  return r.ok ? [] : r.issues.map(formatIssue);
}

const base = (up: string, route = '', extra = '') => `upstreams:
  - name: u
    targets: [http://127.0.0.1:1, { url: "http://127.0.0.1:2", weight: 3 }]
${up}
routes:
  - upstream: u
${route}
${extra}`;

test('gateway keys compile to typed, defaulted values', () => {
  const r = parsePolicy(
    base(
      `    balance: hash
    hashOn: header:X-User
    sticky: { cookie: srv, ttl: 1h }
    healthCheck: { path: /hz, expectStatus: 200-399 }`,
      `    rewrite: { stripPrefix: /api/ }
    requestHeaders: { set: { X-Env: prod }, remove: [X-Debug] }
    access: { allow: [10.0.0.0/8], methods: [get, POST] }`,
    ),
    'p.yaml',
  );
  assert.ok(r.ok, r.ok ? '' : r.issues.map(formatIssue).join('\n'));
  const u = r.policy.upstreams.get('u')!;
  assert.deepEqual(u.targets.map((t) => t.weight), [1, 3]);
  assert.equal(u.balance, 'hash');
  assert.deepEqual(u.hashOn, { kind: 'header', name: 'x-user' });
  assert.deepEqual(u.sticky, { kind: 'cookie', name: 'srv', maxAgeSec: 3600, secure: false, httpOnly: true, sameSite: 'Lax' });
  assert.deepEqual(u.healthCheck, { path: '/hz', intervalMs: 5000, timeoutMs: 1000, healthyThreshold: 2, unhealthyThreshold: 3, expect: [[200, 399]] });
  const route = r.policy.routes[0]!;
  assert.deepEqual(route.rewrite, { kind: 'strip', prefix: '/api' });
  assert.deepEqual(route.requestHeaders, { set: [['x-env', 'prod']], add: [], remove: ['x-debug'] });
  assert.deepEqual(route.access, { allow: ['10.0.0.0/8'], deny: [], requireIdentity: false, methods: ['GET', 'POST'] });
});

test('gateway keys: mistakes are reported with their place', () => {
  const cases: [string, RegExp][] = [
    [base('    balance: leastConn'), /balance: must be roundRobin, leastRequest, random or hash/],
    [base('    hashOn: ip'), /hashOn applies only with balance: hash/],
    [base('    sticky: { cookie: s, sameSite: None }'), /sameSite: None needs secure: true/],
    [base('    sticky: { cookie: s, appCookie: J }'), /sticky: must be/],
    [base('    healthCheck: { interval: 1s }'), /missing required key 'path'/],
    [base('    healthCheck: { path: /h, expectStatus: 2x }'), /expectStatus: must be a status/],
    [base('', '    access: { requireIdentity: true }'), /requireIdentity needs identity.jwt/],
    [base('', '    access: { deny: [10.0.0.300/8] }'), /not an IP address or CIDR/],
    [base('', '    rewrite: { regex: "(", replace: / }'), /invalid regular expression/],
    [base('', '    rewrite: { stripPrefix: api }'), /rewrite: must be \{ stripPrefix: \/p \}/],
    [base('', '    requestHeaders: { set: { host: x } }'), /header 'host' cannot be changed/],
    [base('', '    responseHeaders: { remove: [content-length] }'), /cannot be removed/],
    [base('', '', `classes:\n  - name: k\n    access: { methods: [] }\ndefaultClass: k`), /methods/],
  ];
  for (const [yaml, re] of cases) {
    const issues = check(yaml);
    assert.ok(issues.some((i) => re.test(i)), `expected ${re} in:\n${issues.join('\n')}`);
    assert.ok(issues.every((i) => /^p\.yaml:\d+:\d+: /.test(i)), issues.join('\n'));
  }
});
