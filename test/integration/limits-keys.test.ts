/**
 * Issue 16 items 2, 3, 4 and 6 through a real proxy: fresh keys under a long
 * period, IPv6 prefixes and address spellings, ports in X-Forwarded-For,
 * buckets across reloads, RateLimit-Policy of fractional rates.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { startBackend, type Backend } from '../helpers/backend.js';
import { startSluice, simplePolicy, type RunningSluice } from '../helpers/sluice.js';
import { getJson, waitFor } from '../helpers/net.js';

let backend: Backend;
let sluice: RunningSluice;

function policy(reloadable: string): string {
  return simplePolicy(
    backend.url,
    `trustedProxies: [127.0.0.1]
classes:
  - name: hourly
    match: { headers: { x-tier: hourly } }
    rateLimit: { rate: 1, per: 1h, burst: 1, key: ip }
  - name: v6
    match: { headers: { x-tier: v6 } }
    rateLimit: { rate: 1, per: 1h, burst: 2, key: ip }
  - name: v6host
    match: { headers: { x-tier: v6host } }
    rateLimit: { rate: 1, per: 1h, burst: 1, key: ip, ipv6Prefix: 128 }
  - name: partners
    match: { clientIp: [203.0.113.0/24, "2001:db8:ffff::/48"] }
    rateLimit: { rate: 1, per: 1h, burst: 2, key: ip }
${reloadable}
  - name: half
    match: { headers: { x-tier: half } }
    rateLimit: { rate: 0.5, per: 1s, burst: 1, key: header:x-user }
  - name: twoandahalf
    match: { headers: { x-tier: twoandahalf } }
    rateLimit: { rate: 2.5, per: 1s, burst: 1, key: header:x-user }
  - name: perminute
    match: { headers: { x-tier: perminute } }
    rateLimit: { rate: 100, per: 1m, burst: 1, key: header:x-user }
  - name: free
defaultClass: free
`,
  );
}

const RELOADABLE = (timeout: string, burst: number): string => `  - name: sticky
    match: { headers: { x-tier: sticky } }
    queue: { size: 10, timeout: ${timeout} }
    rateLimit: { rate: 1, per: 1h, burst: ${burst}, key: header:x-user }`;

before(async () => {
  backend = await startBackend();
  sluice = await startSluice(policy(RELOADABLE('5s', 2)));
});

after(async () => {
  await waitFor(async () => {
    const s = await getJson<{ inFlight: number; queued: number }>(`${sluice.admin}/status`);
    return s.inFlight === 0 && s.queued === 0;
  });
  await sluice.stop();
  await backend.close();
});

async function get(headers: Record<string, string>): Promise<Response> {
  const r = await fetch(`${sluice.url}/x`, { headers });
  await r.arrayBuffer();
  return r;
}
const code = async (headers: Record<string, string>): Promise<number> => (await get(headers)).status;

test('the issue: 200 fresh clients under rate 1 per 1h, burst 1 are all admitted once, then limited', async () => {
  const first: number[] = [];
  for (let i = 0; i < 200; i++) first.push(await code({ 'x-tier': 'hourly', 'x-forwarded-for': `198.51.100.${i % 250}, 10.9.${i >> 8}.${i & 255}` }));
  // The nearest untrusted XFF entry is the client: 10.9.x.y, 200 distinct addresses.
  const ok = first.filter((c) => c === 200).length;
  console.log(`fresh clients under 1/h burst 1: ${ok}/200 admitted on their first request`);
  assert.equal(ok, 200);
  assert.equal(await code({ 'x-tier': 'hourly', 'x-forwarded-for': '10.9.0.7' }), 429, 'a second request of one client is limited');
});

test('IPv6 clients rotating addresses inside one /64 share one bucket; another /64 has its own; spellings are one key', async () => {
  const codes: number[] = [];
  for (const a of ['2001:db8:1:2::1', '2001:db8:1:2::2', '2001:DB8:1:2:0:0:0:3', '2001:db8:1:2:ffff:eeee:dddd:cccc']) {
    codes.push(await code({ 'x-tier': 'v6', 'x-forwarded-for': a }));
  }
  assert.deepEqual(codes, [200, 200, 429, 429]);
  assert.equal(await code({ 'x-tier': 'v6', 'x-forwarded-for': '2001:db8:1:3::1' }), 200);
  // ipv6Prefix: 128 keys each address; its spellings are still one key.
  assert.equal(await code({ 'x-tier': 'v6host', 'x-forwarded-for': '2001:db8:9::1' }), 200);
  assert.equal(await code({ 'x-tier': 'v6host', 'x-forwarded-for': '2001:0DB8:0009:0:0:0:0:0001' }), 429);
  assert.equal(await code({ 'x-tier': 'v6host', 'x-forwarded-for': '2001:db8:9::2' }), 200);
  // IPv4-mapped is the IPv4 address.
  assert.equal(await code({ 'x-tier': 'hourly', 'x-forwarded-for': '192.0.2.55' }), 200);
  assert.equal(await code({ 'x-tier': 'hourly', 'x-forwarded-for': '::ffff:192.0.2.55' }), 429);
});

test('IP:port and [v6]:port entries of a trusted X-Forwarded-For: no port in the key, and clientIp matchers see the address', async () => {
  // No x-tier: only the clientIp matcher can put these in class "partners" (burst 2).
  const codes: number[] = [];
  for (const xff of ['203.0.113.7:51234', '203.0.113.7:51235', '203.0.113.7:1']) codes.push(await code({ 'x-forwarded-for': xff }));
  assert.deepEqual(codes, [200, 200, 429]);
  const r = await get({ 'x-forwarded-for': '203.0.113.7:9' });
  assert.match(r.headers.get('ratelimit-policy') ?? '', /^"partners";/);
  const v6: number[] = [];
  for (const xff of ['[2001:db8:ffff::7]:443', '[2001:db8:ffff::8]:80', '2001:db8:ffff::9']) v6.push(await code({ 'x-forwarded-for': xff }));
  assert.deepEqual(v6, [200, 200, 429]);
});

test('a reload that changes only queue.timeout keeps every bucket; a changed burst carries the fill level over', async () => {
  const alice = { 'x-tier': 'sticky', 'x-user': 'alice' };
  const bob = { 'x-tier': 'sticky', 'x-user': 'bob' };
  assert.deepEqual([await code(alice), await code(alice), await code(alice)], [200, 200, 429]);
  assert.equal(await code(bob), 200); // bob used half of burst 2
  await writeFile(sluice.configFile, policy(RELOADABLE('7s', 2)));
  assert.equal((await fetch(`${sluice.admin}/reload`, { method: 'POST' })).status, 200);
  assert.equal(await code(alice), 429, 'queue.timeout reload must not refill');
  // burst 2 → 4: alice (empty) stays empty; bob (half full) gets half of 4.
  await writeFile(sluice.configFile, policy(RELOADABLE('7s', 4)));
  assert.equal((await fetch(`${sluice.admin}/reload`, { method: 'POST' })).status, 200);
  assert.equal(await code(alice), 429, 'an empty bucket stays empty under a larger burst');
  assert.deepEqual([await code(bob), await code(bob), await code(bob)], [200, 200, 429]);
  // A new client gets the new burst.
  const carol = { 'x-tier': 'sticky', 'x-user': 'carol' };
  assert.deepEqual([await code(carol), await code(carol), await code(carol), await code(carol), await code(carol)], [200, 200, 200, 200, 429]);
});

test('RateLimit-Policy advertises fractional rates exactly (q per w seconds)', async () => {
  const cases: [string, string][] = [
    ['half', '"half";q=1;w=2;burst=1'],
    ['twoandahalf', '"twoandahalf";q=5;w=2;burst=1'],
    ['perminute', '"perminute";q=5;w=3;burst=1'],
    ['hourly', '"hourly";q=1;w=3600;burst=1'],
  ];
  for (const [tier, header] of cases) {
    const h = { 'x-tier': tier, 'x-user': 'policy-probe', 'x-forwarded-for': '10.77.0.1' };
    let r = await get(h);
    while (r.status === 200) r = await get(h);
    assert.equal(r.status, 429);
    assert.equal(r.headers.get('ratelimit-policy'), header, tier);
  }
});

test('a client pacing itself by the advertised q/w (with 10% margin) is never limited', async () => {
  const h = { 'x-tier': 'twoandahalf', 'x-user': 'pacer' };
  // Learn the policy from a 429.
  let r = await get(h);
  while (r.status === 200) r = await get(h);
  const m = /q=(\d+);w=(\d+)/.exec(r.headers.get('ratelimit-policy') ?? '')!;
  const gapMs = ((Number(m[2]) * 1000) / Number(m[1])) * 1.1;
  await new Promise((res) => setTimeout(res, gapMs));
  const codes: number[] = [];
  let next = performance.now();
  for (let i = 0; i < 6; i++) {
    codes.push(await code(h));
    next += gapMs;
    await new Promise((res) => setTimeout(res, Math.max(0, next - performance.now())));
  }
  assert.deepEqual(codes, [200, 200, 200, 200, 200, 200], `paced every ${gapMs} ms`);
});
