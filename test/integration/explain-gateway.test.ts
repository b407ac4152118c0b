import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ROOT, runCli } from '../helpers/sluice.js';

const cfg = join(ROOT, 'policies', 'examples', 'gateway-sessions.yaml');

interface Out {
  route: string;
  access: { decision: string; status?: number; rule: string };
  target: { url: string | null; reason: string };
  rewrite?: { path: string; headers: string[] };
}

async function explain(...args: string[]): Promise<Out> {
  const r = await runCli(['explain', '--config', cfg, '--json', ...args]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Out;
}

test('sluice explain: access decision, target choice and rewrites', async () => {
  let o = await explain('--path', '/img/logo.png');
  assert.equal(o.access.decision, 'allow');
  assert.match(o.target.reason, /^ring hash of path = "\/img\/logo.png"$/);
  const again = await explain('--path', '/img/logo.png');
  assert.equal(again.target.url, o.target.url, 'the hash choice is stable');
  assert.equal(o.rewrite!.path, '/img/logo.png → /logo.png');
  assert.ok(o.rewrite!.headers.includes('response: remove server'));

  o = await explain('--path', '/img/logo.png', '--method', 'DELETE');
  assert.deepEqual([o.access.decision, o.access.status, o.access.rule], ['deny', 405, "route 'images'.access.methods"]);

  o = await explain('--path', '/admin/users', '--ip', '203.0.113.9');
  assert.deepEqual([o.access.status, o.access.rule], [403, "route 'admin-api'.access.allow"]);
  o = await explain('--path', '/admin/users');
  assert.deepEqual([o.access.status, o.access.rule], [401, "route 'admin-api'.access.requireIdentity"]);
  assert.equal(o.rewrite!.path, '/admin/users → /internal/admin/users');

  o = await explain('--path', '/legacy/cart?id=3', '-H', 'x-debug: 1');
  assert.equal(o.rewrite!.path, '/legacy/cart?id=3 → /app/cart?id=3');
  assert.deepEqual(o.rewrite!.headers, ['remove x-debug', 'set x-forwarded-prefix: /legacy']);
  assert.match(o.target.reason, /^leastRequest over 2 target/);

  o = await explain('--path', '/cart');
  assert.match(o.target.reason, /roundRobin over 3 target\(s\).*the response sets cookie shop_srv/);

  const text = await runCli(['explain', '--config', cfg, '--path', '/img/a.png', '--method', 'POST']);
  assert.match(text.stdout, /^access: {3}deny 405 \(route 'images'.access.methods\)$/m);
  assert.match(text.stdout, /^target: {3}http:\/\/127\.0\.0\.1:500\d \(ring hash of path = "\/img\/a.png"\)$/m);
  assert.match(text.stdout, /^rewrite: {2}\/img\/a.png → \/a.png/m);
});
