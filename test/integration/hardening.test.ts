import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:http2';
import { startBackend } from '../helpers/backend.js';
import { startSluice, simplePolicy } from '../helpers/sluice.js';
import { waitFor } from '../helpers/net.js';

const TIERED = (trusted: string) => `trustedProxies: [${trusted}]
trustedHeaders: [x-tier]
classes:
  - name: premium
    match: { headers: { x-tier: premium } }
  - name: free
defaultClass: free
`;

test('trustedHeaders: removed from untrusted peers before classification and forwarding, kept from trusted ones', async () => {
  const backend = await startBackend();
  const untrusted = await startSluice(simplePolicy(backend.url, TIERED('10.0.0.0/8')));
  const trusted = await startSluice(simplePolicy(backend.url, TIERED('127.0.0.1/32')));
  try {
    const r1 = (await (await fetch(`${untrusted.url}/x`, { headers: { 'x-tier': 'premium' } })).json()) as { headers: Record<string, string> };
    assert.equal(r1.headers['x-tier'], undefined, 'forged header not forwarded');
    const s1 = (await (await fetch(`${untrusted.admin}/status`)).json()) as { classes: { name: string; served: number }[] };
    assert.equal(s1.classes.find((c) => c.name === 'premium')!.served, 0, 'and not used to classify');
    const r2 = (await (await fetch(`${trusted.url}/x`, { headers: { 'x-tier': 'premium' } })).json()) as { headers: Record<string, string> };
    assert.equal(r2.headers['x-tier'], 'premium');
    const s2 = (await (await fetch(`${trusted.admin}/status`)).json()) as { classes: { name: string; served: number }[] };
    assert.equal(s2.classes.find((c) => c.name === 'premium')!.served, 1);
  } finally {
    await untrusted.stop();
    await trusted.stop();
    await backend.close();
  }
});

test('POST /reload requires the admin token when one is configured', async () => {
  const backend = await startBackend();
  const s = await startSluice(`admin: { token: "0123456789abcdef-secret" }\n${simplePolicy(backend.url)}`);
  try {
    assert.equal((await fetch(`${s.admin}/reload`, { method: 'POST' })).status, 401);
    assert.equal((await fetch(`${s.admin}/reload`, { method: 'POST', headers: { authorization: 'Bearer wrong-token-0000000' } })).status, 401);
    const ok = await fetch(`${s.admin}/reload`, { method: 'POST', headers: { authorization: 'Bearer 0123456789abcdef-secret' } });
    assert.equal(ok.status, 200);
    assert.equal((await fetch(`${s.admin}/healthz`)).status, 200, 'read-only endpoints stay open');
  } finally {
    await s.stop();
    await backend.close();
  }
});

test('a request target over limits.maxUrlLength gets 414', async () => {
  const backend = await startBackend();
  const s = await startSluice(simplePolicy(backend.url, 'limits: { maxUrlLength: 100 }\n'));
  try {
    assert.equal((await fetch(`${s.url}/${'a'.repeat(200)}`)).status, 414);
    assert.equal((await fetch(`${s.url}/short`)).status, 200);
  } finally {
    await s.stop();
    await backend.close();
  }
});

test('HTTP/2 connections are limited to http2MaxConcurrentStreams open streams', async () => {
  const backend = await startBackend();
  const s = await startSluice(simplePolicy(backend.url, 'limits: { http2MaxConcurrentStreams: 3 }\n'));
  const session = connect(s.url);
  try {
    const settings = await new Promise<{ maxConcurrentStreams?: number }>((r) => session.once('remoteSettings', r));
    assert.equal(settings.maxConcurrentStreams, 3);
  } finally {
    session.close();
    await s.stop();
    await backend.close();
  }
});

test('--watch reloads the policy when its file changes', async () => {
  const backend = await startBackend();
  const s = await startSluice(simplePolicy(backend.url).replace('pathPrefix: /', 'pathPrefix: /old'), ['--watch']);
  try {
    assert.equal((await fetch(`${s.url}/new`)).status, 404);
    await writeFile(s.configFile, simplePolicy(backend.url).replace('pathPrefix: /', 'pathPrefix: /new'));
    await waitFor(async () => (await fetch(`${s.url}/new`)).status === 200, 5000, 'the watched policy to reload');
    assert.equal((await fetch(`${s.url}/old`)).status, 404);
  } finally {
    await s.stop();
    await backend.close();
  }
});
