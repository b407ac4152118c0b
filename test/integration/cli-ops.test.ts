/** Command line for operators: --version, SUBCOMMAND --help, "did you mean", explain's checks and JWT reasons, check's warnings. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { ROOT, runCli, writePolicy } from '../helpers/sluice.js';

test('sluice --version prints the package version', async () => {
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const r = await runCli(['--version']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `sluice ${pkg.version}\n`);
});

test('sluice SUBCOMMAND --help: that subcommand\'s usage on stdout, exit 0', async () => {
  for (const cmd of ['serve', 'check', 'explain', 'demo']) {
    for (const flag of ['--help', '-h']) {
      const r = await runCli([cmd, flag]);
      assert.equal(r.code, 0, `${cmd} ${flag}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^usage: sluice ${cmd} `), `${cmd} ${flag}`);
      assert.match(r.stdout, /--help/);
      assert.equal(r.stderr, '');
    }
  }
});

test('unknown command or option: "did you mean", usage on stderr, exit 2', async () => {
  const c = await runCli(['chek', '--config', 'x']);
  assert.equal(c.code, 2);
  assert.match(c.stderr, /^sluice: unknown command 'chek' \(did you mean 'check'\?\)/);
  const o = await runCli(['serve', '--conifg', 'x.yaml']);
  assert.equal(o.code, 2);
  assert.match(o.stderr, /^sluice serve: unknown option '--conifg' \(did you mean --config\?\)/);
  assert.match(o.stderr, /usage:/);
  const far = await runCli(['explain', '--zzzzzzzz']);
  assert.equal(far.code, 2);
  assert.match(far.stderr, /^sluice explain: unknown option '--zzzzzzzz'\n/, 'no suggestion when nothing is close');
  const v = await runCli(['--versoin']);
  assert.equal(v.code, 2);
  assert.match(v.stderr, /did you mean '--version'/);
  const stray = await runCli(['check', 'policy.yaml']);
  assert.equal(stray.code, 2);
  assert.match(stray.stderr, /unexpected argument 'policy.yaml'/);
});

test('explain --ip rejects what is not an IPv4 or IPv6 address', async () => {
  const cfg = join(ROOT, 'policies', 'examples', 'premium-vs-free.yaml');
  for (const bad of ['nope', '10.0.0.300', '10.0.0.0/8', '']) {
    const r = await runCli(['explain', '--config', cfg, '--ip', bad]);
    assert.equal(r.code, 2, `--ip ${bad}`);
    assert.match(r.stderr, /--ip: expected an IPv4 or IPv6 address/);
  }
  const v6 = await runCli(['explain', '--config', cfg, '--ip', '2001:db8::1', '--json']);
  assert.equal(v6.code, 0, v6.stderr);
  assert.equal((JSON.parse(v6.stdout) as { request: { clientIp: string } }).request.clientIp, '2001:db8::1');
});

test('explain says why a JWT was not accepted: not a JWT, bad signature, expired, wrong issuer; and shows verified claims', async () => {
  const cfg = join(ROOT, 'policies', 'examples', 'api-gateway.yaml');
  const secret = new TextEncoder().encode('change-me-to-a-long-random-secret-of-32-bytes');
  const now = Math.floor(Date.now() / 1000);
  const sign = (key: Uint8Array, claims: Record<string, unknown>, exp: number, iss = 'https://auth.example.com'): Promise<string> =>
    new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuer(iss).setIssuedAt(now - 7200).setExpirationTime(exp).sign(key);
  const cases: [string, RegExp][] = [
    ['not.a.jwt', /not a JWT/],
    [await sign(new TextEncoder().encode('another-secret-another-secret-another'), { tier: 'gold' }, now + 600), /bad signature/],
    [await sign(secret, { tier: 'gold' }, now - 3600), /expired at \d{4}-/],
    [await sign(secret, { tier: 'gold' }, now + 600, 'https://evil.example'), /claim 'iss' rejected/],
  ];
  for (const [token, reason] of cases) {
    const r = await runCli(['explain', '--config', cfg, '--path', '/v1/orders/1', '-H', `authorization: Bearer ${token}`, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { identity: { verified: boolean; reason: string } };
    assert.equal(out.identity.verified, false);
    assert.match(out.identity.reason, reason);
    const t = await runCli(['explain', '--config', cfg, '--path', '/v1/orders/1', '-H', `authorization: Bearer ${token}`]);
    assert.match(t.stdout, /identity: JWT not accepted: /);
  }
  const none = await runCli(['explain', '--config', cfg, '--path', '/v1/orders/1', '--json']);
  assert.match((JSON.parse(none.stdout) as { identity: { reason: string } }).identity.reason, /no token \(header authorization/);
  const good = await sign(secret, { tier: 'gold' }, now + 600);
  const ok = await runCli(['explain', '--config', cfg, '--path', '/v1/orders/1', '-H', `authorization: Bearer ${good}`, '--json']);
  const out = JSON.parse(ok.stdout) as { identity: { verified: boolean; claims: Record<string, unknown> } };
  assert.equal(out.identity.verified, true);
  assert.equal(out.identity.claims.tier, 'gold');
});

test('check warns (stderr, still ok) about unreachable and shadowed classes and a reserve that starves a small upstream', async () => {
  const file = await writePolicy(`upstreams:
  - name: small
    targets: [http://127.0.0.1:1]
    maxConcurrent: 4
  - name: big
    targets: [http://127.0.0.1:2]
    maxConcurrent: 100
routes:
  - match: { pathPrefix: / }
    upstream: small
classes:
  - name: tier
    priority: 0
    reserve: 3
    match: { headers: { x-tier: [gold, silver] } }
  - name: gold-api
    priority: 0
    match: { pathPrefix: /api, headers: { X-Tier: gold } }
  - name: orphan
    priority: 1
  - name: posts
    priority: 1
    match: { methods: [POST] }
  - name: rest
    priority: 2
defaultClass: rest
`);
  const r = await runCli(['check', '--config', file]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^ok /);
  const warnings = r.stderr.trim().split('\n');
  assert.equal(warnings.length, 3, r.stderr);
  assert.match(r.stderr, /classes\[1\] 'gold-api' is shadowed by classes\[0\] 'tier'/);
  assert.match(r.stderr, /classes\[2\] 'orphan' has no match and is not the defaultClass \('rest'\)/);
  assert.match(r.stderr, /upstream 'small' \(maxConcurrent 4\): class reserves \('tier' 3\) leave only 1 shared slot/);
  assert.doesNotMatch(r.stderr, /'posts'|'big'/);
  for (const line of warnings) assert.ok(line.startsWith(`${file}: warning: `), line);
});

test('check prints no warning for the shipped policies', async () => {
  for (const f of ['default.yaml', 'demo.yaml', 'examples/api-gateway.yaml', 'examples/premium-vs-free.yaml', 'examples/protect-fragile-backend.yaml']) {
    const r = await runCli(['check', '--config', join(ROOT, 'policies', f)]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '', f);
  }
});

test('check: admin.requireToken without a token is an error; unknown endpoint names too', async () => {
  const base = 'upstreams:\n  - name: a\n    targets: [http://127.0.0.1:1]\nroutes:\n  - upstream: a\n';
  const noToken = await writePolicy(`${base}admin:\n  requireToken: [status]\n`);
  const r = await runCli(['check', '--config', noToken]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`^${noToken}:7:3: admin\\.requireToken: requireToken needs admin\\.token`));
  const typo = await writePolicy(`${base}admin:\n  token: 0123456789abcdef0123\n  requireToken: [stats]\n`);
  const t = await runCli(['check', '--config', typo]);
  assert.equal(t.code, 1);
  assert.match(t.stderr, /requireToken/);
  const good = await writePolicy(`${base}admin:\n  token: 0123456789abcdef0123\n  requireToken: [status, metrics]\nlog: { access: true, accessSample: 0.5 }\nerrors: { debug: false }\nserverTiming: trusted\n`);
  const g = await runCli(['check', '--config', good]);
  assert.equal(g.code, 0, g.stderr);
  const bad = await writePolicy(`${base}serverTiming: sometimes\nlog: { accessSample: 2 }\n`);
  const b = await runCli(['check', '--config', bad]);
  assert.equal(b.code, 1);
  assert.match(b.stderr, /serverTiming: .*all, trusted or off/);
  assert.match(b.stderr, /log\.accessSample/);
});

test('check warns about an admin listener beyond loopback without a token, and serverTiming: trusted with nobody trusted', async () => {
  const base = 'upstreams:\n  - name: a\n    targets: [http://127.0.0.1:1]\nroutes:\n  - upstream: a\n';
  const open = await writePolicy(`${base}admin: { host: 0.0.0.0 }\nserverTiming: trusted\n`);
  const r = await runCli(['check', '--config', open]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /warning: admin listens on 0\.0\.0\.0 without a token/);
  assert.match(r.stderr, /warning: serverTiming: trusted with no trustedProxies/);
  const closed = await writePolicy(`${base}admin: { host: 0.0.0.0, token: 0123456789abcdef0123 }\nserverTiming: trusted\ntrustedProxies: [10.0.0.0/8]\n`);
  const c = await runCli(['check', '--config', closed]);
  assert.equal(c.code, 0, c.stderr);
  assert.equal(c.stderr, '');
});
