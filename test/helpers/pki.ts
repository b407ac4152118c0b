/**
 * Test certificates, made at test time with the openssl CLI in a temp folder
 * (nothing checked in that could expire): a CA, server certificates signed by
 * it (localhost + 127.0.0.1, other.test for SNI, a wrong host name, an expired
 * one), a self-signed one from no known CA, and client certificates for mTLS.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';

const run = promisify(execFile);

export interface Pem {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
}

export interface Pki {
  dir: string;
  caFile: string;
  ca: string;
  /** CN=localhost, SAN DNS:localhost, IP:127.0.0.1. */
  server: Pem;
  /** SAN DNS:other.test (SNI). */
  other: Pem;
  /** SAN DNS:wrong.test only: a hostname mismatch for 127.0.0.1/localhost. */
  wrongHost: Pem;
  /** localhost, expired yesterday. */
  expired: Pem;
  /** localhost, self-signed (unknown authority). */
  selfSigned: Pem;
  clientCaFile: string;
  /** CN=partner-a, O=Partner, SAN DNS:partner.example.com, signed by the client CA. */
  client: Pem;
  /** CN=intruder, signed by the server CA (not the client CA). */
  strangerClient: Pem;
  /** Makes another certificate signed by the CA (e.g. to replace one on reload). */
  issue(name: string, cn: string, san: string, days?: number): Promise<Pem>;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  await run('openssl', args, { cwd: dir });
}

async function key(dir: string, name: string): Promise<void> {
  await openssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`]);
}

async function selfSignedCa(dir: string, name: string, cn: string): Promise<void> {
  await key(dir, name);
  await openssl(dir, ['req', '-x509', '-key', `${name}.key`, '-out', `${name}.crt`, '-subj', `/CN=${cn}`, '-days', '2']);
}

async function signed(dir: string, ca: string, name: string, subj: string, san: string | undefined, days: number): Promise<Pem> {
  await key(dir, name);
  await openssl(dir, ['req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', subj]);
  const ext = join(dir, `${name}.ext`);
  await writeFile(ext, san ? `subjectAltName=${san}\n` : 'basicConstraints=CA:FALSE\n');
  await openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-out', `${name}.crt`, '-days', String(days), '-extfile', ext]);
  return pem(dir, name);
}

async function pem(dir: string, name: string): Promise<Pem> {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  return { certFile, keyFile, cert: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8') };
}

export async function makePki(): Promise<Pki> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-pki-'));
  await Promise.all([selfSignedCa(dir, 'ca', 'sluice test CA'), selfSignedCa(dir, 'clientca', 'sluice partner CA')]);
  const issue = (name: string, cn: string, san: string, days = 2): Promise<Pem> => signed(dir, 'ca', name, `/CN=${cn}`, san, days);
  const [server, other, wrongHost, expired, client, strangerClient] = await Promise.all([
    issue('server', 'localhost', 'DNS:localhost,IP:127.0.0.1'),
    issue('other', 'other.test', 'DNS:other.test'),
    issue('wrong', 'wrong.test', 'DNS:wrong.test'),
    issue('expired', 'localhost', 'DNS:localhost,IP:127.0.0.1', -1),
    signed(dir, 'clientca', 'client', '/CN=partner-a/O=Partner', 'DNS:partner.example.com', 2),
    issue('stranger', 'intruder', 'DNS:intruder.test'),
  ]);
  await selfSignedCa(dir, 'self', 'localhost');
  const selfSigned = await pem(dir, 'self');
  return {
    dir,
    caFile: join(dir, 'ca.crt'),
    ca: await readFile(join(dir, 'ca.crt'), 'utf8'),
    server,
    other,
    wrongHost,
    expired,
    selfSigned,
    clientCaFile: join(dir, 'clientca.crt'),
    client,
    strangerClient,
    issue,
  };
}
