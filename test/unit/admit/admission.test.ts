/** Admission across reloads (issue 16.4) and its readiness signal (16.5). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock, systemClock } from '../../../src/clock.js';
import { parsePolicy, formatIssue } from '../../../src/policy/load.js';
import type { Policy } from '../../../src/policy/types.js';
import { Admission } from '../../../src/admit/index.js';
import type { RequestContext } from '../../../src/accept/context.js';
import { silentLogger } from '../../../src/telemetry/log.js';
import { startRedis } from '../../helpers/redis.js';
import { closedPort } from '../../helpers/net.js';

function policy(rateLimit: string, queue = '{ size: 10, timeout: 5s }'): Policy {
  const r = parsePolicy(
    `upstreams: [{ name: u, targets: [http://127.0.0.1:1] }]
routes: [{ upstream: u }]
classes:
  - name: k
    queue: ${queue}
    rateLimit: ${rateLimit}
defaultClass: k
`,
    't.yaml',
  );
  if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
  return r.policy;
}

/** Just enough of a request for `key: header:x-user` and `key: ip`. */
function req(user: string, ip = '10.0.0.1'): RequestContext {
  return { req: { headers: { 'x-user': user } }, clientIp: ip, peer: ip } as unknown as RequestContext;
}

function admitted(a: Admission, p: Policy, user: string, n: number, ip?: string): number {
  let ok = 0;
  for (let i = 0; i < n; i++) {
    const d = a.admit(req(user, ip), p.classes[0]!);
    assert.ok(!(d instanceof Promise));
    if (d.kind === 'admit') ok++;
  }
  return ok;
}

test('reload: queue.timeout and onLimit changes keep the very same buckets', () => {
  const clock = new FakeClock();
  let p = policy('{ rate: 1, per: 1s, burst: 3, key: "header:x-user" }');
  const a = new Admission(p, { clock, log: silentLogger });
  const before = a.limiter(p.classes[0]!);
  assert.equal(admitted(a, p, 'alice', 5), 3);
  p = policy('{ rate: 1, per: 1s, burst: 3, key: "header:x-user", onLimit: queue }', '{ size: 10, timeout: 9s }');
  a.update(p);
  assert.equal(a.limiter(p.classes[0]!), before, 'same limiter object');
  // Still empty (no refill), and onLimit: queue now applies: the next token is reserved 1 s ahead.
  const d = a.admit(req('alice'), p.classes[0]!);
  assert.ok(!(d instanceof Promise) && d.kind === 'delay' && d.ms === 1000, JSON.stringify(d instanceof Promise ? null : { ...d, limiter: undefined }));
  a.close();
});

test('reload: a changed rate/burst carries fill levels; a changed key or ipv6Prefix starts full', () => {
  const clock = new FakeClock();
  let p = policy('{ rate: 1, per: 1h, burst: 4, key: "header:x-user" }');
  const a = new Admission(p, { clock, log: silentLogger });
  assert.equal(admitted(a, p, 'alice', 1), 1); // 3 of 4 left (75%)
  assert.equal(admitted(a, p, 'bob', 4), 4); // empty
  p = policy('{ rate: 2, per: 1h, burst: 8, key: "header:x-user" }');
  a.update(p);
  assert.equal(admitted(a, p, 'alice', 10), 6, '75% of burst 8');
  assert.equal(admitted(a, p, 'bob', 10), 0, 'empty stays empty');
  assert.equal(admitted(a, p, 'carol', 10), 8, 'untouched clients start full');
  p = policy('{ rate: 2, per: 1h, burst: 8, key: ip }');
  a.update(p);
  assert.equal(admitted(a, p, 'bob', 10, '10.0.0.9'), 8, 'a new key function starts from full buckets');
  p = policy('{ rate: 2, per: 1h, burst: 8, key: ip, ipv6Prefix: 56 }');
  a.update(p);
  assert.equal(admitted(a, p, 'bob', 10, '10.0.0.9'), 8, 'a new ipv6Prefix starts from full buckets');
  a.close();
});

test('readiness: no failClosed store is ready at once; an unreachable one is not ready within a bounded wait; a live one becomes ready', async () => {
  const local = new Admission(policy('{ rate: 1, per: 1s }'), { clock: systemClock, log: silentLogger });
  assert.equal(local.isReady(), true);
  assert.equal(await local.whenReady(10), true);
  local.close();

  const open = new Admission(policy(`{ rate: 1, per: 1s, store: { redis: "redis://127.0.0.1:${await closedPort()}" } }`), { clock: systemClock, log: silentLogger });
  assert.equal(open.isReady(), true, 'a fail-open store never holds readiness back');
  open.close();

  const dead = new Admission(policy(`{ rate: 1, per: 1s, store: { redis: "redis://127.0.0.1:${await closedPort()}", failClosed: true } }`), {
    clock: systemClock,
    log: silentLogger,
  });
  assert.equal(dead.isReady(), false);
  const t0 = performance.now();
  assert.equal(await dead.whenReady(300), false);
  assert.ok(performance.now() - t0 < 2000);
  dead.close();

  const redis = await startRedis();
  try {
    const live = new Admission(policy(`{ rate: 1, per: 1s, store: { redis: "${redis.url}", failClosed: true } }`), { clock: systemClock, log: silentLogger });
    assert.equal(await live.whenReady(5000), true);
    assert.equal(live.isReady(), true);
    await live.ready;
    live.close();
  } finally {
    await redis.stop();
  }
});

test('a limit beyond the exact integer range is a policy error with its position', () => {
  const r = parsePolicy(
    `upstreams: [{ name: u, targets: [http://127.0.0.1:1] }]
routes: [{ upstream: u }]
classes:
  - name: k
    rateLimit: { rate: 1, per: 100000h, burst: 10000 }
defaultClass: k
`,
    't.yaml',
  );
  assert.equal(r.ok, false);
  const msgs = r.ok ? [] : r.issues.map(formatIssue);
  assert.match(msgs.join('\n'), /^t\.yaml:5:\d+: classes\[0\]\.rateLimit: burst × per \/ rate is \d+ days; at most about 71 years$/m);
});
