import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePolicy, formatIssue } from '../../../src/policy/load.js';

const BASE = `upstreams:
  - name: api
    targets: [http://127.0.0.1:3000]
routes:
  - match: { pathPrefix: / }
    upstream: api
`;

function errors(yaml: string): string[] {
  const r = parsePolicy(yaml, 'p.yaml');
  assert.equal(r.ok, false, 'expected the policy to be rejected');
  return r.ok ? [] : r.issues.map(formatIssue);
}

function ok(yaml: string) {
  const r = parsePolicy(yaml, 'p.yaml');
  if (!r.ok) assert.fail(r.issues.map(formatIssue).join('\n'));
  return r.policy;
}

test('a minimal policy loads with defaults and is frozen', () => {
  const p = ok(BASE);
  assert.equal(p.classes.length, 1);
  assert.equal(p.defaultClass.name, 'default');
  assert.equal(p.upstreams.get('api')!.timeoutMs, 30_000);
  assert.equal(p.upstreams.get('api')!.maxConcurrent, Infinity);
  assert.equal(p.listen.port, 8080);
  assert.equal(p.admin.host, '127.0.0.1');
  assert.ok(Object.isFrozen(p));
  assert.ok(Object.isFrozen(p.routes[0]));
});

test('units: durations, sizes and rates resolve', () => {
  const p = ok(`${BASE}classes:
  - name: gold
    queue: { size: 5, timeout: 250ms }
    bandwidth: { download: 1MiB/s, upload: 500kB/s, burst: 64KiB }
    rateLimit: { rate: 10, per: 1m, burst: 3, key: header:x-api-key }
defaultClass: gold
limits: { maxHeaderSize: 8KiB }
`);
  const k = p.classes[0]!;
  assert.equal(k.queue.timeoutMs, 250);
  assert.equal(k.bandwidth!.download, 1024 * 1024);
  assert.equal(k.bandwidth!.upload, 500_000);
  assert.equal(k.bandwidth!.burst, 64 * 1024);
  assert.equal(k.rateLimit!.perMs, 60_000);
  assert.equal(k.rateLimit!.key, 'header:x-api-key');
  assert.equal(p.limits.maxHeaderSize, 8192);
});

test('bad YAML syntax has a line and column', () => {
  const e = errors('upstreams:\n  - name: api\n    targets: [http://127.0.0.1:3000\nroutes: []\n');
  assert.match(e[0]!, /^p\.yaml:\d+:\d+: YAML: /);
});

test('duplicate YAML keys are errors', () => {
  const e = errors(`${BASE}listen: { port: 1 }\nlisten: { port: 2 }\n`);
  assert.match(e.join('\n'), /p\.yaml:8:1: YAML: Map keys must be unique/);
});

test('unknown keys are rejected at the key, with a suggestion', () => {
  const e = errors(BASE.replace('targets:', 'targts: [x]\n    targets:'));
  assert.ok(e.some((l) => /^p\.yaml:3:5: upstreams\[0\]\.targts: unknown key 'targts' \(did you mean 'targets'\?\)/.test(l)), e.join('\n'));
  const e2 = errors(`${BASE}classes:\n  - name: a\n    quue: { size: 1 }\ndefaultClass: a\n`);
  assert.ok(e2.some((l) => /^p\.yaml:9:5: classes\[0\]\.quue: unknown key 'quue' \(did you mean 'queue'\?\)/.test(l)), e2.join('\n'));
});

test('wrong types say what was expected and where', () => {
  const e = errors(BASE.replace('targets:', 'maxConcurrent: lots\n    targets:'));
  assert.ok(e.some((l) => /^p\.yaml:3:20: upstreams\[0\]\.maxConcurrent: must be a positive integer or auto, got "lots"/.test(l)), e.join('\n'));
});

test('bad durations, sizes and rates are pinpointed', () => {
  const e = errors(`${BASE}classes:
  - name: a
    queue: { timeout: 5 parsecs }
    bandwidth: { download: fast }
defaultClass: a
limits: { maxBodySize: huge }
`);
  const all = e.join('\n');
  assert.match(all, /p\.yaml:9:23: classes\[0\]\.queue\.timeout: must be a duration such as 250ms, 5s or 1m, got "5 parsecs"/);
  assert.match(all, /p\.yaml:10:28: classes\[0\]\.bandwidth\.download: must be a rate such as 1MiB\/s or 500kB\/s, got "fast"/);
  assert.match(all, /p\.yaml:12:24: limits\.maxBodySize: must be a size such as 64KiB, 1MiB or 500kB, got "huge"/);
});

test('bad CIDRs and regexes are pinpointed', () => {
  const e = errors(`${BASE}trustedProxies: [10.0.0.0/33]
classes:
  - name: a
    match:
      clientIp: [10.0.0.0/8, not-an-ip]
      headers: { x-a: { regex: "([" } }
defaultClass: a
`);
  const all = e.join('\n');
  assert.match(all, /p\.yaml:7:18: trustedProxies\[0\]: not an IP address or CIDR: "10\.0\.0\.0\/33"/);
  assert.match(all, /p\.yaml:11:30: classes\[0\]\.match\.clientIp\[1\]: not an IP address or CIDR: "not-an-ip"/);
  assert.match(all, /p\.yaml:12:32: classes\[0\]\.match\.headers\.x-a\.regex: invalid regular expression/);
});

test('duplicate names are errors', () => {
  const e = errors(`upstreams:
  - name: api
    targets: [http://127.0.0.1:3000]
  - name: api
    targets: [http://127.0.0.1:3001]
routes:
  - upstream: api
classes:
  - name: a
  - name: a
defaultClass: a
`);
  const all = e.join('\n');
  assert.match(all, /p\.yaml:4:11: upstreams\[1\]\.name: duplicate upstream name 'api'/);
  assert.match(all, /p\.yaml:10:11: classes\[1\]\.name: duplicate class name 'a'/);
});

test('a route naming a missing upstream is an error', () => {
  const e = errors(BASE.replace('upstream: api', 'upstream: nope'));
  assert.ok(e.some((l) => /^p\.yaml:6:15: routes\[0\]\.upstream: no upstream named 'nope' \(upstreams: api\)/.test(l)), e.join('\n'));
});

test('defaultClass naming a missing class is an error, and is required with classes', () => {
  const e = errors(`${BASE}classes:\n  - name: a\ndefaultClass: b\n`);
  assert.ok(e.some((l) => /^p\.yaml:9:15: defaultClass: no class named 'b' \(classes: a\)/.test(l)), e.join('\n'));
  const e2 = errors(`${BASE}classes:\n  - name: a\n`);
  assert.ok(e2.some((l) => /missing required key 'defaultClass'/.test(l)), e2.join('\n'));
});

test('missing required keys are reported at the parent', () => {
  const e = errors('upstreams:\n  - name: api\nroutes:\n  - upstream: api\n');
  assert.ok(e.some((l) => /^p\.yaml:2:5: upstreams\[0\]: missing required key 'targets'/.test(l)), e.join('\n'));
});

test('reserves that leave no shared slot are an error', () => {
  const e = errors(`upstreams:
  - name: api
    targets: [http://127.0.0.1:3000]
    maxConcurrent: 4
routes:
  - upstream: api
classes:
  - name: a
    reserve: 2
  - name: b
    reserve: 2
defaultClass: a
`);
  assert.ok(e.some((l) => /classes\[0\]\.reserve: class reserves sum to 4, which leaves no shared slot of upstream 'api'/.test(l)), e.join('\n'));
});

test('value matchers accept string, list, regex and presence but nothing else', () => {
  ok(`${BASE}classes:
  - name: a
    match:
      headers: { x-a: one, x-b: [two, three], x-c: { regex: "^f" }, x-d: { present: true } }
defaultClass: a
`);
  const e = errors(`${BASE}classes:\n  - name: a\n    match:\n      headers: { x-a: 5 }\ndefaultClass: a\n`);
  assert.ok(e.some((l) => /classes\[0\]\.match\.headers\.x-a: must be a string, a list of strings, \{ regex: \.\.\. \} or \{ present: true\|false \}, got 5/.test(l)), e.join('\n'));
});
