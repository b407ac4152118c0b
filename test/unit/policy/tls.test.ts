import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { loadPolicyFile, formatIssue } from '../../../src/policy/load.js';
import { writePolicy } from '../../helpers/sluice.js';
import { makePki, type Pki } from '../../helpers/pki.js';

let pki: Pki;
before(async () => {
  pki = await makePki();
});

const TAIL = `upstreams: [{ name: a, targets: ["http://127.0.0.1:1"] }]
routes: [{ upstream: a }]
`;

async function load(yaml: string): Promise<{ ok: boolean; errors: string[]; policy?: unknown }> {
  const r = await loadPolicyFile(await writePolicy(yaml));
  return r.ok ? { ok: true, errors: [], policy: r.policy } : { ok: false, errors: r.issues.map(formatIssue) };
}

test('listen: one mapping or a list; TLS files are read, names taken from the certificate', async () => {
  const r = await loadPolicyFile(
    await writePolicy(`listen:
  - { port: 0, tls: { cert: ${pki.server.certFile}, key: ${pki.server.keyFile} } }
  - { host: 0.0.0.0, port: 8080 }
${TAIL}`),
  );
  assert.ok(r.ok);
  const [tls, clear] = r.policy.listeners;
  assert.equal(r.policy.listen.port, 0);
  assert.equal(tls!.tls!.minVersion, 'TLSv1.2');
  assert.deepEqual(tls!.tls!.certificates[0]!.serverNames, ['localhost']);
  assert.equal(tls!.tls!.requireClientCert, false);
  assert.equal(clear!.tls, undefined);
  assert.equal(clear!.host, '0.0.0.0');
  const single = await loadPolicyFile(await writePolicy(`listen: { port: 9000 }\n${TAIL}`));
  assert.ok(single.ok);
  assert.deepEqual(single.policy.listeners, [{ host: '127.0.0.1', port: 9000 }]);
});

test('TLS listener errors name the file and the key', async () => {
  const e1 = await load(`listen: { tls: { cert: nope.crt, key: ${pki.server.keyFile} } }\n${TAIL}`);
  assert.match(e1.errors.join('\n'), /:1:\d+: listen\.tls\.cert: cannot read nope\.crt/);
  const e2 = await load(`listen: { tls: { cert: ${pki.server.certFile}, key: ${pki.other.keyFile} } }\n${TAIL}`);
  assert.match(e2.errors.join('\n'), /listen\.tls\.key: certificate .*server\.crt does not match private key .*other\.key/);
  const e3 = await load(`listen: { tls: { cert: ${pki.server.keyFile}, key: ${pki.server.keyFile} } }\n${TAIL}`);
  assert.match(e3.errors.join('\n'), /is not a PEM certificate/);
  const e4 = await load(`listen: { tls: { key: ${pki.server.keyFile} } }\n${TAIL}`);
  assert.match(e4.errors.join('\n'), /tls needs cert and key/);
  const e5 = await load(`listen: { tls: { cert: ${pki.server.certFile}, key: ${pki.server.keyFile}, requireClientCert: true } }\n${TAIL}`);
  assert.match(e5.errors.join('\n'), /requireClientCert needs clientCa/);
  const e6 = await load(`listen: { tls: { cert: a, key: b, minVersion: TLSv1.0 } }\n${TAIL}`);
  assert.match(e6.errors.join('\n'), /minVersion.*TLSv1\.2 or TLSv1\.3/);
  const e7 = await load(`listen: [{ port: 7000 }, { port: 7000 }]\n${TAIL}`);
  assert.match(e7.errors.join('\n'), /listen\[1\]\.port: listener 127\.0\.0\.1:7000 is already listen\[0\]/);
});

test('upstream protocol, scheme and tls must agree', async () => {
  const up = (s: string): string => `upstreams: [{ name: a, ${s} }]\nroutes: [{ upstream: a }]\n`;
  assert.match((await load(up('targets: ["http://h:1"], protocol: h2'))).errors.join(), /protocol h2 is HTTP\/2 over TLS/);
  assert.match((await load(up('targets: ["https://h:1"], protocol: h2c'))).errors.join(), /protocol h2c is HTTP\/2 without TLS/);
  assert.match((await load(up('targets: ["http://h:1", "https://h:2"]'))).errors.join(), /mix http:\/\/ and https:\/\//);
  assert.match((await load(up('targets: ["http://h:1"], tls: { insecureSkipVerify: true }'))).errors.join(), /tls applies to https:\/\/ targets/);
  assert.match((await load(up('targets: ["https://h:1"], protocol: h3'))).errors.join(), /http1, h2 or h2c/);
  assert.match((await load(up(`targets: ["https://h:1"], tls: { cert: ${pki.client.certFile} }`))).errors.join(), /needs both cert and key/);
  const ok = await loadPolicyFile(await writePolicy(up(`targets: ["https://127.0.0.1", "https://api.test:8443"], protocol: h2, tls: { ca: ${pki.caFile} }`)));
  assert.ok(ok.ok);
  const [ip, named] = ok.policy.upstreams.get('a')!.targets;
  assert.equal(ip!.port, 443);
  assert.equal(ip!.tls!.servername, '', 'no SNI for an IP address');
  assert.equal(named!.tls!.servername, 'api.test');
  assert.equal(named!.tls!.rejectUnauthorized, true);
  assert.equal(named!.url, 'https://api.test:8443');
});

test('match.clientCert needs a listener with clientCa', async () => {
  const r = await load(`classes: [{ name: p, match: { clientCert: { cn: x } } }]\ndefaultClass: p\n${TAIL}`);
  assert.match(r.errors.join(), /match\.clientCert needs a TLS listener with clientCa/);
});
