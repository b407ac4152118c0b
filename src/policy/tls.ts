/**
 * TLS parts of a policy: the `listen` list with its certificates, and the TLS
 * client settings of https:// upstream targets. Certificate and key files are
 * read (asynchronously) by the loader beforehand and checked here: a file that
 * cannot be read, a PEM that does not parse, or a certificate that does not
 * match its key is a policy error naming the file, so a bad reload keeps the
 * old certificates.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { referencedPath } from './files.js';
import type { RawListen, RawListenTls, RawUpstream } from './schema.js';
import type { ListenPolicy, TlsCertificate, TlsClientPolicy, TlsServerPolicy, UpstreamProtocol } from './types.js';

type Path = (string | number)[];
type Fail = (path: Path, message: string) => void;

const DEFAULT_LISTEN = { host: '127.0.0.1', port: 8080 } as const;

/** Every file a policy's TLS settings name (relative as written), so the loader can read them first. */
export function tlsFileRefs(raw: unknown): string[] {
  const out: string[] = [];
  const str = (v: unknown): void => {
    if (typeof v === 'string') out.push(v);
  };
  const r = raw as { listen?: unknown; upstreams?: unknown } | null;
  const listens = Array.isArray(r?.listen) ? (r.listen as unknown[]) : [r?.listen];
  for (const l of listens) {
    const t = (l as { tls?: Record<string, unknown> } | undefined)?.tls;
    if (!t || typeof t !== 'object') continue;
    str(t.cert);
    str(t.key);
    str(t.clientCa);
    if (Array.isArray(t.certificates)) for (const c of t.certificates as Record<string, unknown>[]) if (c) (str(c.cert), str(c.key));
  }
  if (Array.isArray(r?.upstreams)) {
    for (const u of r.upstreams as { tls?: Record<string, unknown> }[]) {
      const t = u?.tls;
      if (t && typeof t === 'object') (str(t.ca), str(t.cert), str(t.key));
    }
  }
  return out;
}

class Reader {
  constructor(
    private readonly policyFile: string,
    private readonly files: ReadonlyMap<string, string>,
    readonly fail: Fail,
  ) {}

  text(ref: string, path: Path): string | undefined {
    const t = this.files.get(referencedPath(this.policyFile, ref));
    if (t === undefined) this.fail(path, `cannot read ${ref}`);
    return t;
  }

  cert(ref: string, path: Path): { pem: string; x509: X509Certificate } | undefined {
    const pem = this.text(ref, path);
    if (pem === undefined) return undefined;
    try {
      return { pem, x509: new X509Certificate(pem) };
    } catch (err) {
      this.fail(path, `${ref} is not a PEM certificate: ${(err as Error).message}`);
      return undefined;
    }
  }

  key(ref: string, path: Path): { pem: string; key: KeyObject } | undefined {
    const pem = this.text(ref, path);
    if (pem === undefined) return undefined;
    try {
      return { pem, key: createPrivateKey(pem) };
    } catch (err) {
      this.fail(path, `${ref} is not an unencrypted PEM private key: ${(err as Error).message}`);
      return undefined;
    }
  }

  /** A certificate and its key, checked to belong together. */
  pair(certRef: string, keyRef: string, path: Path): { cert: string; key: string; x509: X509Certificate } | undefined {
    const c = this.cert(certRef, [...path, 'cert']);
    const k = this.key(keyRef, [...path, 'key']);
    if (!c || !k) return undefined;
    if (!c.x509.checkPrivateKey(k.key)) {
      this.fail([...path, 'key'], `certificate ${certRef} does not match private key ${keyRef}`);
      return undefined;
    }
    return { cert: c.pem, key: k.pem, x509: c.x509 };
  }
}

/** DNS names a certificate is for: its DNS subjectAltNames, else its subject CN. */
export function certificateNames(x: X509Certificate): string[] {
  const san = x.subjectAltName;
  if (san) {
    return san
      .split(', ')
      .filter((e) => e.startsWith('DNS:'))
      .map((e) => e.slice(4).toLowerCase());
  }
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(x.subject)?.[1];
  return cn ? [cn.toLowerCase()] : [];
}

function compileServerTls(t: RawListenTls, r: Reader, path: Path): TlsServerPolicy | undefined {
  const list: { cert: string; key: string; serverNames?: string[] }[] = [];
  if (t.certificates && (t.cert !== undefined || t.key !== undefined)) {
    r.fail(path, 'give cert + key or certificates, not both');
    return undefined;
  }
  if (t.certificates) list.push(...t.certificates);
  else if (t.cert !== undefined && t.key !== undefined) list.push({ cert: t.cert, key: t.key });
  else {
    r.fail(path, 'tls needs cert and key (PEM files) or certificates: [{ cert, key, serverNames }]');
    return undefined;
  }
  const certificates: TlsCertificate[] = [];
  list.forEach((c, i) => {
    const at = t.certificates ? [...path, 'certificates', i] : path;
    const p = r.pair(c.cert, c.key, at);
    if (!p) return;
    const serverNames = (c.serverNames ?? certificateNames(p.x509)).map((n) => n.toLowerCase());
    certificates.push(Object.freeze({ certFile: c.cert, cert: p.cert, key: p.key, serverNames: Object.freeze(serverNames) }));
  });
  let clientCa: string | undefined;
  if (t.clientCa !== undefined) clientCa = r.cert(t.clientCa, [...path, 'clientCa'])?.pem;
  if (t.requireClientCert && t.clientCa === undefined) r.fail([...path, 'requireClientCert'], 'requireClientCert needs clientCa (the CA client certificates are verified against)');
  if (certificates.length !== list.length) return undefined;
  return Object.freeze({
    certificates: Object.freeze(certificates),
    minVersion: t.minVersion ?? 'TLSv1.2',
    ...(clientCa !== undefined ? { clientCa } : {}),
    requireClientCert: t.requireClientCert ?? false,
  });
}

/** `listen` (one entry or a list) → listeners; the first is the one --port overrides. */
export function compileListeners(
  raw: RawListen | RawListen[] | undefined,
  policyFile: string,
  files: ReadonlyMap<string, string>,
  fail: Fail,
): ListenPolicy[] {
  const r = new Reader(policyFile, files, fail);
  const list = raw === undefined ? [{}] : Array.isArray(raw) ? raw : [raw];
  const out = list.map((l, i): ListenPolicy => {
    const path: Path = Array.isArray(raw) ? ['listen', i] : ['listen'];
    const tls = l.tls ? compileServerTls(l.tls, r, [...path, 'tls']) : undefined;
    return Object.freeze({ host: l.host ?? DEFAULT_LISTEN.host, port: l.port ?? DEFAULT_LISTEN.port, ...(tls ? { tls } : {}) });
  });
  const seen = new Map<string, number>();
  out.forEach((l, i) => {
    if (l.port === 0) return;
    const k = `${l.host}:${l.port}`;
    const first = seen.get(k);
    if (first !== undefined) fail(['listen', i, 'port'], `listener ${k} is already listen[${first}]`);
    else seen.set(k, i);
  });
  return out;
}

/**
 * An upstream's protocol and the TLS settings of its targets. Every target has
 * one scheme; h2 needs https://, h2c needs http://, and tls needs https://.
 */
export function compileUpstreamTransport(
  u: RawUpstream,
  index: number,
  policyFile: string,
  files: ReadonlyMap<string, string>,
  fail: Fail,
): { protocol: UpstreamProtocol; tlsFor(hostname: string): TlsClientPolicy | undefined } {
  const p: Path = ['upstreams', index];
  const protocol = u.protocol ?? 'http1';
  const schemes = new Set(u.targets.map((t) => ((typeof t === 'string' ? t : t.url).startsWith('https://') ? 'https' : 'http')));
  if (schemes.size > 1) fail([...p, 'targets'], 'targets mix http:// and https://; give one scheme per upstream');
  const https = schemes.has('https');
  if (protocol === 'h2' && !https) fail([...p, 'protocol'], 'protocol h2 is HTTP/2 over TLS: targets must be https:// (h2c is HTTP/2 without TLS)');
  if (protocol === 'h2c' && https) fail([...p, 'protocol'], 'protocol h2c is HTTP/2 without TLS: targets must be http:// (use h2 for https://)');
  if (u.tls && !https) fail([...p, 'tls'], 'tls applies to https:// targets; these are http://');
  const t = u.tls ?? {};
  const r = new Reader(policyFile, files, fail);
  const ca = t.ca !== undefined ? r.cert(t.ca, [...p, 'tls', 'ca'])?.pem : undefined;
  if ((t.cert === undefined) !== (t.key === undefined)) fail([...p, 'tls'], 'a client certificate needs both cert and key');
  const pair = t.cert !== undefined && t.key !== undefined ? r.pair(t.cert, t.key, [...p, 'tls']) : undefined;
  return {
    protocol,
    tlsFor(hostname: string): TlsClientPolicy | undefined {
      if (!https) return undefined;
      return Object.freeze({
        ...(ca !== undefined ? { ca } : {}),
        // SNI carries host names only; an IP target is checked against the certificate's IP SANs.
        servername: t.servername ?? (isIP(hostname) ? '' : hostname),
        ...(pair ? { cert: pair.cert, key: pair.key } : {}),
        rejectUnauthorized: t.insecureSkipVerify !== true,
      });
    },
  };
}
