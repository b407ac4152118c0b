/**
 * Issue 16 item 8: with --watch, a change to a file the policy refers to (JWKS,
 * HMAC secret) reloads like a change to the policy itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { SignJWT, generateKeyPair, exportJWK } from 'jose';
import { startBackend } from '../helpers/backend.js';
import { startSluiceFile, writePolicy, simplePolicy, type RunningSluice } from '../helpers/sluice.js';
import { getJson, waitFor } from '../helpers/net.js';
import { loadPolicyFile } from '../../src/policy/load.js';
import { referencedFiles } from '../../src/policy/watch.js';

interface Status {
  inFlight: number;
  queued: number;
  classes: { name: string; served: number }[];
}

async function served(s: RunningSluice, name: string): Promise<number> {
  const st = await getJson<Status>(`${s.admin}/status`);
  return st.classes.find((c) => c.name === name)!.served;
}

async function asMember(s: RunningSluice, token: string): Promise<boolean> {
  const before = await served(s, 'members');
  const r = await fetch(`${s.url}/x`, { headers: { authorization: `Bearer ${token}` } });
  await r.arrayBuffer();
  assert.equal(r.status, 200);
  return (await served(s, 'members')) === before + 1;
}

const CLASSES = `classes:
  - name: members
    match: { jwtClaims: { sub: alice } }
  - name: free
defaultClass: free
`;

async function jwks(key: Parameters<typeof exportJWK>[0], kid: string): Promise<string> {
  return JSON.stringify({ keys: [{ ...(await exportJWK(key)), kid, alg: 'RS256', use: 'sig' }] });
}

test('referencedFiles lists the policy file and every file it names', async () => {
  const file = await writePolicy(
    simplePolicy('http://127.0.0.1:9', `identity:\n  jwt: { jwksFile: keys/jwks.json }\nadmin: { tokenFile: admin.token }\n${CLASSES}`),
  );
  const dir = dirname(file);
  await import('node:fs/promises').then((fs) => fs.mkdir(join(dir, 'keys')));
  await writeFile(join(dir, 'keys', 'jwks.json'), '{"keys":[]}');
  await writeFile(join(dir, 'admin.token'), '0123456789abcdef-token');
  const r = await loadPolicyFile(file);
  assert.ok(r.ok);
  assert.deepEqual(referencedFiles(r.policy).sort(), [file, join(dir, 'keys', 'jwks.json'), join(dir, 'admin.token')].sort());
});

test('--watch: replacing the JWKS file (rename over it) reloads; a token of the new key then verifies', async () => {
  const backend = await startBackend();
  const a = await generateKeyPair('RS256', { extractable: true });
  const b = await generateKeyPair('RS256', { extractable: true });
  const file = await writePolicy(simplePolicy(backend.url, `identity:\n  jwt: { jwksFile: jwks.json, algorithms: [RS256] }\n${CLASSES}`));
  const jwksPath = join(dirname(file), 'jwks.json');
  await writeFile(jwksPath, await jwks(a.publicKey, 'a'));
  const s = await startSluiceFile(file, ['--watch']);
  try {
    const tokenB = await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'RS256', kid: 'b' }).setIssuedAt().setExpirationTime('10m').sign(b.privateKey);
    assert.equal(await asMember(s, tokenB), false, 'key b is not in the JWKS yet');
    // As secret managers do: write a temp file, rename it over the old one.
    await writeFile(`${jwksPath}.tmp`, await jwks(b.publicKey, 'b'));
    await rename(`${jwksPath}.tmp`, jwksPath);
    await waitFor(() => asMember(s, tokenB), 5000, 'the JWKS change to reload');
    // And in place, back to key a: a token of b stops verifying.
    await writeFile(jwksPath, await jwks(a.publicKey, 'a'));
    await waitFor(async () => !(await asMember(s, tokenB)), 5000, 'the second JWKS change to reload');
    const st = await getJson<Status>(`${s.admin}/status`);
    assert.equal(st.inFlight + st.queued, 0);
  } finally {
    await s.stop();
    await backend.close();
  }
});

test('--watch: changing the HMAC secretFile reloads; a file newly named by the policy is watched after the reload', async () => {
  const backend = await startBackend();
  const file = await writePolicy(simplePolicy(backend.url, `identity:\n  jwt: { secretFile: secret.txt }\n${CLASSES}`));
  const dir = dirname(file);
  await writeFile(join(dir, 'secret.txt'), 'first-secret-0123456789\n');
  await writeFile(join(dir, 'other.txt'), 'other-secret-0123456789\n');
  const s = await startSluiceFile(file, ['--watch']);
  const sign = (secret: string): Promise<string> =>
    new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime('10m').sign(new TextEncoder().encode(secret));
  try {
    assert.equal(await asMember(s, await sign('first-secret-0123456789')), true);
    await writeFile(join(dir, 'secret.txt'), 'second-secret-0123456789\n');
    await waitFor(async () => asMember(s, await sign('second-secret-0123456789')), 5000, 'the secret change to reload');
    assert.equal(await asMember(s, await sign('first-secret-0123456789')), false);
    // The policy now names another file: after that reload, that file is the one watched.
    await writeFile(file, simplePolicy(backend.url, `identity:\n  jwt: { secretFile: other.txt }\n${CLASSES}`));
    await waitFor(async () => asMember(s, await sign('other-secret-0123456789')), 5000, 'the policy change to reload');
    await writeFile(join(dir, 'other.txt'), 'third-secret-0123456789\n');
    await waitFor(async () => asMember(s, await sign('third-secret-0123456789')), 5000, 'the newly referenced file to reload');
    const st = await getJson<Status>(`${s.admin}/status`);
    assert.equal(st.inFlight + st.queued, 0);
  } finally {
    await s.stop();
    await backend.close();
  }
});
