/**
 * TLS to upstream targets: connect options from the policy, and TLS failures
 * named for the problem+json `detail` (unknown authority, hostname mismatch,
 * expired), since a bare OpenSSL code means little to whoever reads a 502.
 */
import type { ConnectionOptions } from 'node:tls';
import type { TlsClientPolicy } from '../../policy/types.js';

/** tls.connect options of a target: CA, SNI name, client certificate, verification. */
export function tlsConnectOptions(t: TlsClientPolicy): ConnectionOptions {
  return {
    ...(t.ca !== undefined ? { ca: t.ca } : {}),
    ...(t.cert !== undefined ? { cert: t.cert, key: t.key } : {}),
    servername: t.servername,
    rejectUnauthorized: t.rejectUnauthorized,
  };
}

const UNKNOWN_AUTHORITY = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
]);

/**
 * What went wrong in a TLS handshake with an upstream, in words, or undefined
 * when the error is not a TLS one. Codes are OpenSSL's X509 verify results as
 * Node reports them (tls.TLSSocket 'error'), plus Node's own hostname check.
 */
export function describeTlsError(err: unknown): string | undefined {
  const e = err as NodeJS.ErrnoException & { reason?: string };
  const code = e?.code ?? '';
  if (UNKNOWN_AUTHORITY.has(code)) return `certificate signed by an unknown authority (${code})`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `certificate hostname mismatch: ${e.reason ?? e.message}`;
  if (code === 'CERT_HAS_EXPIRED') return 'certificate expired (CERT_HAS_EXPIRED)';
  if (code === 'CERT_NOT_YET_VALID') return 'certificate not yet valid (CERT_NOT_YET_VALID)';
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || (code === 'EPROTO' && /wrong version number|packet length too long/.test(e.message))) {
    return `TLS handshake failed: the target does not speak TLS (${code})`;
  }
  if (code === 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL') return 'TLS handshake failed: the target does not offer HTTP/2 (ALPN h2); use protocol http1';
  if (code.startsWith('ERR_SSL_') || code === 'EPROTO' || code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return `TLS handshake failed (${code}: ${firstLine(e.message)})`;
  if (code.startsWith('CERT_') || code.endsWith('_CERT')) return `certificate rejected (${code}: ${firstLine(e.message)})`;
  return undefined;
}

/** OpenSSL messages run over several lines with source locations; the first part says enough. */
function firstLine(m: string): string {
  const line = m.split('\n')[0] ?? '';
  const i = line.lastIndexOf(':SSL routines:');
  return (i === -1 ? line : line.slice(i + 1)).slice(0, 200);
}
