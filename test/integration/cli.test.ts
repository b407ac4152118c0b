import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT, runCli, writePolicy } from '../helpers/sluice.js';
import { jsonSchemaText } from '../../src/policy/json-schema.js';

async function policyFiles(): Promise<string[]> {
  const top = (await readdir(join(ROOT, 'policies'))).filter((f) => f.endsWith('.yaml')).map((f) => join(ROOT, 'policies', f));
  const ex = (await readdir(join(ROOT, 'policies', 'examples'))).filter((f) => f.endsWith('.yaml')).map((f) => join(ROOT, 'policies', 'examples', f));
  return [...top, ...ex];
}

test('every policy shipped in policies/ passes sluice check', async () => {
  const files = await policyFiles();
  assert.ok(files.length >= 5, `found ${files.length} policies`);
  for (const f of files) {
    const r = await runCli(['check', '--config', f]);
    assert.equal(r.code, 0, `${f}: ${r.stderr}`);
    assert.match(r.stdout, /^ok .*: \d+ upstream\(s\), \d+ route\(s\), \d+ class\(es\)/);
  }
});

test('the published JSON schema is the one the code validates with', async () => {
  const published = await readFile(join(ROOT, 'policies', 'policy.schema.json'), 'utf8');
  assert.equal(published, jsonSchemaText(), 'run `npm run schema` to regenerate policies/policy.schema.json');
});

test('sluice check: one FILE:LINE:COL line per problem, exit 1', async () => {
  const file = await writePolicy(`upstreams:
  - name: api
    targets: [http://127.0.0.1:1]
    timeout: soon
routes:
  - upstream: nope
    colour: red
`);
  const r = await runCli(['check', '--config', file]);
  assert.equal(r.code, 1);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 2, r.stderr);
  assert.match(lines[0]!, new RegExp(`^${file}:4:14: upstreams\\[0\\]\\.timeout: must be a duration`));
  assert.match(lines[1]!, new RegExp(`^${file}:7:5: routes\\[0\\]\\.colour: unknown key 'colour'`));
  assert.equal(r.stdout, '');
});

test('sluice check: semantic errors come after the schema passes', async () => {
  const file = await writePolicy(`upstreams:
  - name: api
    targets: [http://127.0.0.1:1]
routes:
  - upstream: nope
`);
  const r = await runCli(['check', '--config', file]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`^${file}:5:15: routes\\[0\\]\\.upstream: no upstream named 'nope'`));
});

test('sluice serve with an invalid policy: errors on stderr, exit 1, nothing listens', async () => {
  const file = await writePolicy('upstreams: []\nroutes: []\n');
  const r = await runCli(['serve', '--config', file, '--port', '0']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /upstreams: must NOT have fewer than 1 items/);
  assert.doesNotMatch(r.stdout, /listening/);
});

test('sluice explain: route, upstream, class and the deciding rule (text and --json)', async () => {
  const cfg = join(ROOT, 'policies', 'examples', 'premium-vs-free.yaml');
  const t = await runCli(['explain', '--config', cfg, '--path', '/orders', '-H', 'x-tier: premium', '--ip', '10.2.3.4']);
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stdout, /class:\s+premium \(priority 0\)/);
  assert.match(t.stdout, /rule:\s+classes\[0\] 'premium' matched on clientIp, headers\.x-tier/);
  const j = await runCli(['explain', '--config', cfg, '--method', 'POST', '--path', '/orders', '-H', 'x-tier: premium', '--ip', '203.0.113.5', '--json']);
  const out = JSON.parse(j.stdout) as Record<string, unknown>;
  assert.equal(out.route, 'route-0');
  assert.equal(out.upstream, 'api');
  assert.equal(out.class, 'free-batch', 'a premium header from outside the trusted network does not promote');
  assert.match(String(out.rule), /defaultClass 'free-batch'/);
  const none = await runCli(['explain', '--config', join(ROOT, 'policies', 'examples', 'api-gateway.yaml'), '--path', '/nope', '--json']);
  assert.equal((JSON.parse(none.stdout) as { route: unknown }).route, null);
});

test('unknown commands print usage and exit 2', async () => {
  const r = await runCli(['frobnicate']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /usage:/);
});
