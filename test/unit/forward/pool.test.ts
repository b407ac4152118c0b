import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../../src/clock.js';
import { parsePolicy, formatIssue } from '../../../src/policy/load.js';
import { UpstreamPool } from '../../../src/forward/pool.js';

function pool(targets: number, extra = '') {
  const r = parsePolicy(
    `upstreams:
  - name: u
    targets: [${Array.from({ length: targets }, (_, i) => `http://127.0.0.1:${1000 + i}`).join(', ')}]
${extra}
routes:
  - upstream: u
`,
    'p.yaml',
  );
  if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
  const clock = new FakeClock();
  return { clock, pool: new UpstreamPool(r.policy.upstreams.get('u')!, clock) };
}

const ports = (p: UpstreamPool, n: number) => Array.from({ length: n }, () => p.pick().target.port);

test('round robin over the targets', () => {
  const { pool: p } = pool(3);
  assert.deepEqual(ports(p, 6), [1000, 1001, 1002, 1000, 1001, 1002]);
  p.close();
});

test('consecutive failures eject a target for a growing back-off, then it returns', () => {
  const { pool: p, clock } = pool(3, '    outlierDetection: { consecutiveFailures: 3, baseEjectionTime: 10s, maxEjectionPercent: 50 }');
  const bad = p.pick();
  p.failed(bad);
  p.failed(bad);
  p.succeeded(bad); // a success in between resets the streak
  p.failed(bad);
  p.failed(bad);
  assert.equal(p.health()[0]!.ejected, false);
  p.failed(bad);
  assert.equal(p.health()[0]!.ejected, true);
  assert.ok(!ports(p, 10).includes(1000), 'ejected target not picked');
  clock.advance(10_001);
  assert.ok(ports(p, 3).includes(1000), 'back after the ejection time');
  for (let i = 0; i < 3; i++) p.failed(bad);
  clock.advance(10_001);
  assert.equal(p.health()[0]!.ejected, true, 'second ejection lasts twice as long');
  clock.advance(10_000);
  assert.equal(p.health()[0]!.ejected, false);
  p.succeeded(bad);
  assert.equal(p.health()[0]!.ejections, 0, 'a success after returning forgives past ejections');
  p.close();
});

test('never ejects more than maxEjectionPercent; with every target ejected it still picks one (panic)', () => {
  const { pool: p } = pool(2, '    outlierDetection: { consecutiveFailures: 1, maxEjectionPercent: 50 }');
  const [a, b] = [p.pick(), p.pick()];
  p.failed(a);
  p.failed(b);
  assert.deepEqual(p.health().map((h) => h.ejected), [true, false], 'the second would exceed 50%');
  const { pool: all } = pool(2, '    outlierDetection: { consecutiveFailures: 1, maxEjectionPercent: 100 }');
  all.failed(all.pick());
  all.failed(all.pick());
  assert.deepEqual(all.health().map((h) => h.ejected), [true, true]);
  assert.ok([1000, 1001].includes(all.pick().target.port));
  p.close();
  all.close();
});
