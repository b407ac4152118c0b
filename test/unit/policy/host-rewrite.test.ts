/** upstreams[].hostRewrite compiles to a decision value; a bad literal is a FILE:LINE:COL error. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePolicy, formatIssue } from '../../../src/policy/load.js';

const policy = (rewrite: string | undefined): string => `upstreams:
  - name: api
    targets: [http://127.0.0.1:3000]
${rewrite === undefined ? '' : `    hostRewrite: ${rewrite}\n`}routes:
  - upstream: api
`;

test('hostRewrite: client by default, target, or a literal host[:port]', () => {
  const kinds = [undefined, 'target', 'api.internal:8443', '"[::1]:80"'].map((v) => {
    const r = parsePolicy(policy(v), 'p.yaml');
    if (!r.ok) assert.fail(r.issues.map(formatIssue).join('\n'));
    return r.policy.upstreams.get('api')!.hostRewrite;
  });
  assert.deepEqual(kinds, [{ kind: 'client' }, { kind: 'target' }, { kind: 'value', value: 'api.internal:8443' }, { kind: 'value', value: '[::1]:80' }]);
});

test('hostRewrite: a value that is not a host[:port] is refused with its position', () => {
  for (const bad of ['a.example/x', 'user@a', 'a:99999']) {
    const r = parsePolicy(policy(bad), 'p.yaml');
    assert.equal(r.ok, false, bad);
    const msg = r.ok ? '' : r.issues.map(formatIssue).join('\n');
    assert.match(msg, /^p\.yaml:4:\d+: .*hostRewrite must be "target" or a host\[:port\]/m, msg);
  }
});
