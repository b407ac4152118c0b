import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { parsePolicy, formatIssue } from '../../../src/policy/load.js';
import { RequestContext, type InboundRequest, type InboundResponse } from '../../../src/accept/context.js';
import { Runtime } from '../../../src/pipeline.js';
import { systemClock } from '../../../src/clock.js';

function runtime(classes: string, extra = ''): Runtime {
  const r = parsePolicy(
    `upstreams:
  - name: api
    targets: [http://127.0.0.1:1]
  - name: web
    targets: [http://127.0.0.1:2]
routes:
  - name: api
    match: { pathPrefix: /api, methods: [GET, POST] }
    upstream: api
  - name: other
    match: { host: "*.example.com" }
    upstream: web
classes:
${classes}
${extra}`,
    't.yaml',
  );
  if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
  return new Runtime(r.policy, undefined, systemClock);
}

interface Req {
  method?: string;
  url?: string;
  headers?: Record<string, string>;
  ip?: string;
}

async function decide(rt: Runtime, r: Req) {
  const req = {
    method: r.method ?? 'GET',
    url: r.url ?? '/api/x',
    headers: { host: 'localhost', ...r.headers },
    socket: { remoteAddress: r.ip ?? '127.0.0.1' },
  };
  const ctx = new RequestContext(req as unknown as InboundRequest, {} as InboundResponse, 0);
  const d = await rt.decide(ctx);
  return { route: ctx.route?.name, cls: d?.klass.name, rule: d?.rule, ip: ctx.clientIp };
}

const TIERS = `  - name: premium
    priority: 0
    match: { headers: { x-tier: [gold, platinum] } }
  - name: session
    priority: 1
    match: { cookies: { plan: { regex: "^pro" } } }
  - name: search
    match: { query: { q: { present: true } }, pathRegex: "^/api/search" }
  - name: admin
    match: { clientIp: [10.0.0.0/8, "fd00::/8"], path: "/api/admin/**" }
  - name: writes
    match: { methods: [POST], host: api.local }
  - name: free
    priority: 2
defaultClass: free`;

test('routes: first match on path prefix, methods and host; none is undefined', async () => {
  const rt = runtime(TIERS);
  assert.equal((await decide(rt, { url: '/api/a' })).route, 'api');
  assert.equal((await decide(rt, { url: '/api/a', method: 'DELETE' })).route, undefined);
  assert.equal((await decide(rt, { url: '/x', headers: { host: 'www.example.com:8080' } })).route, 'other');
  assert.equal((await decide(rt, { url: '/x', headers: { host: 'example.com' } })).route, undefined);
});

test('classes: headers (list), cookies (regex), query presence, path regex, CIDR v4/v6, glob, methods, host', async () => {
  const rt = runtime(TIERS);
  const c = async (r: Req) => (await decide(rt, r)).cls;
  assert.equal(await c({ headers: { 'x-tier': 'gold' } }), 'premium');
  assert.equal(await c({ headers: { 'x-tier': 'silver' } }), 'free');
  assert.equal(await c({ headers: { cookie: 'a=1; plan=pro-annual' } }), 'session');
  assert.equal(await c({ headers: { cookie: 'plan=basic' } }), 'free');
  assert.equal(await c({ url: '/api/search?q=x' }), 'search');
  assert.equal(await c({ url: '/api/search' }), 'free');
  assert.equal(await c({ url: '/api/admin/users/1', ip: '10.1.2.3' }), 'admin');
  assert.equal(await c({ url: '/api/admin/users/1', ip: 'fd00::5' }), 'admin');
  assert.equal(await c({ url: '/api/admin/users/1', ip: '::ffff:10.9.9.9' }), 'admin');
  assert.equal(await c({ url: '/api/admin/users/1', ip: '192.168.1.1' }), 'free');
  assert.equal(await c({ method: 'POST', headers: { host: 'API.local' } }), 'writes');
  assert.equal(await c({ method: 'GET', headers: { host: 'api.local' } }), 'free');
  assert.match((await decide(rt, { headers: { 'x-tier': 'gold' } })).rule!, /classes\[0\] 'premium' matched on headers\.x-tier/);
  assert.match((await decide(rt, {})).rule!, /defaultClass 'free'/);
});

test('X-Forwarded-For is believed only from trusted proxies', async () => {
  const rt = runtime(TIERS, 'trustedProxies: [127.0.0.1/32]');
  const xff = { 'x-forwarded-for': '203.0.113.9, 10.0.0.7' };
  assert.equal((await decide(rt, { headers: xff, ip: '127.0.0.1' })).ip, '10.0.0.7');
  assert.equal((await decide(rt, { headers: xff, ip: '198.51.100.1' })).ip, '198.51.100.1');
  // Without trusted proxies, the header is ignored entirely.
  const plain = runtime(TIERS);
  assert.equal((await decide(plain, { headers: xff, ip: '127.0.0.1' })).ip, '127.0.0.1');
});

test('verified identity: only a valid JWT promotes; forged, expired or unsigned tokens do not', async () => {
  const secret = 'test-secret-0123456789-abcdefghij';
  const rt = runtime(
    `  - name: gold
    match: { jwtClaims: { tier: gold } }
  - name: free
defaultClass: free`,
    `identity:\n  jwt: { secret: "${secret}", issuer: sluice-test, algorithms: [HS256] }`,
  );
  const key = new TextEncoder().encode(secret);
  const good = await new SignJWT({ tier: 'gold' }).setProtectedHeader({ alg: 'HS256' }).setIssuer('sluice-test').setExpirationTime('5m').sign(key);
  const wrongKey = await new SignJWT({ tier: 'gold' }).setProtectedHeader({ alg: 'HS256' }).setIssuer('sluice-test').sign(new TextEncoder().encode('another-secret-000000000000000000'));
  const expired = await new SignJWT({ tier: 'gold' }).setProtectedHeader({ alg: 'HS256' }).setIssuer('sluice-test').setExpirationTime(Math.floor(Date.now() / 1000) - 60).sign(key);
  const wrongIss = await new SignJWT({ tier: 'gold' }).setProtectedHeader({ alg: 'HS256' }).setIssuer('evil').sign(key);
  const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"tier":"gold","iss":"sluice-test"}').toString('base64url')}.`;
  const c = async (token: string) => (await decide(rt, { headers: { authorization: `Bearer ${token}` } })).cls;
  assert.equal(await c(good), 'gold');
  assert.equal(await c(wrongKey), 'free');
  assert.equal(await c(expired), 'free');
  assert.equal(await c(wrongIss), 'free');
  assert.equal(await c(unsigned), 'free');
  assert.equal((await decide(rt, { headers: { 'x-tier': 'gold' } })).cls, 'free');
});

test('verified identity with public keys from a JWKS file (ES256)', async () => {
  const { generateKeyPair, exportJWK } = await import('jose');
  const { writeFile, mkdtemp } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
  const dir = await mkdtemp(join(tmpdir(), 'sluice-jwks-'));
  const policyFile = join(dir, 'policy.yaml');
  await writeFile(join(dir, 'keys.json'), JSON.stringify({ keys: [jwk] }));
  const { loadPolicyFile } = await import('../../../src/policy/load.js');
  await writeFile(
    policyFile,
    `identity:\n  jwt: { jwksFile: keys.json, algorithms: [ES256] }\nupstreams:\n  - name: api\n    targets: [http://127.0.0.1:1]\nroutes:\n  - upstream: api\nclasses:\n  - name: gold\n    match: { jwtClaims: { tier: gold } }\n  - name: free\ndefaultClass: free\n`,
  );
  const r = await loadPolicyFile(policyFile);
  if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
  const rt = new Runtime(r.policy, undefined, systemClock);
  const good = await new SignJWT({ tier: 'gold' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setExpirationTime('5m').sign(privateKey);
  const other = await generateKeyPair('ES256');
  const forged = await new SignJWT({ tier: 'gold' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(other.privateKey);
  assert.equal((await decide(rt, { url: '/x', headers: { authorization: `Bearer ${good}` } })).cls, 'gold');
  assert.equal((await decide(rt, { url: '/x', headers: { authorization: `Bearer ${forged}` } })).cls, 'free');

  await writeFile(policyFile, `identity:\n  jwt: { jwksFile: missing.json }\nupstreams:\n  - name: api\n    targets: [http://127.0.0.1:1]\nroutes:\n  - upstream: api\n`);
  const bad = await loadPolicyFile(policyFile);
  assert.equal(bad.ok, false);
  if (!bad.ok) assert.match(formatIssue(bad.issues[0]!), /:2:\d+: identity\.jwt\.jwksFile: cannot read missing\.json/);
});
