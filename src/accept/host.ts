/**
 * The request's authority by the RFCs, checked once at accept so that routing,
 * classification, X-Forwarded-Host and the Host sent upstream all read one valid value.
 *
 * - RFC 9112 §3.2: an HTTP/1.1 request without a Host field, with more than one, or with an
 *   invalid one, gets 400 (Node's own missing-Host check is off so the answer is problem+json).
 * - RFC 9112 §3.2.2: with an absolute-form target (`GET http://a.example/x HTTP/1.1`) the
 *   target's authority replaces Host, and the request continues in origin-form (`/x`).
 * - RFC 3986 §3.2: authority = host [":" port]; host is an IP literal, an IPv4 address or a
 *   reg-name of unreserved, sub-delims and %-escapes. RFC 9110 §4.2.4: userinfo in an http(s)
 *   authority is invalid, so `user@host` is refused, as are `a.example/evil` and bad ports.
 * - RFC 9113 §8.3.1: on HTTP/2 the same rules hold for :authority, and a Host field that names
 *   a different authority than :authority makes the request malformed.
 *
 * The checks run on the header values Node parsed and on rawHeaders (duplicates); they
 * mutate `req.url` and `req.headers.host` for the absolute-form rewrite, before any stage
 * builds its view of the request.
 */
import { isIPv6 } from 'node:net';
import type { InboundRequest } from './context.js';

export type AuthorityCheck = { readonly kind: 'ok' } | { readonly kind: 'reject'; readonly status: 400; readonly detail: string };

const OK: AuthorityCheck = Object.freeze({ kind: 'ok' });
const reject = (detail: string): AuthorityCheck => ({ kind: 'reject', status: 400, detail });

// reg-name (RFC 3986): unreserved / pct-encoded / sub-delims. No "@", "/", "?", "#", spaces or controls.
const REG_NAME = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$/;
const IPV_FUTURE = /^v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+$/;

/** Authorities found valid lately: a client sends the same Host on every request (a pure check, so safe to remember). */
const validSeen = new Set<string>();
const VALID_SEEN_MAX = 256;

/** Whether `value` is a valid `host[:port]` (RFC 3986 authority without userinfo). Empty is valid (RFC 9112 §3.2). */
export function isValidAuthority(value: string): boolean {
  if (value === '' || validSeen.has(value)) return true;
  if (!authoritySyntax(value)) return false;
  if (validSeen.size >= VALID_SEEN_MAX) validSeen.clear();
  validSeen.add(value);
  return true;
}

function authoritySyntax(value: string): boolean {
  let host: string;
  let port: string | undefined;
  if (value.startsWith('[')) {
    const end = value.indexOf(']');
    if (end === -1) return false;
    const literal = value.slice(1, end);
    if (!isIPv6(literal) && !IPV_FUTURE.test(literal)) return false;
    const rest = value.slice(end + 1);
    if (rest !== '' && !rest.startsWith(':')) return false;
    host = value.slice(0, end + 1);
    port = rest === '' ? undefined : rest.slice(1);
  } else {
    const colon = value.lastIndexOf(':');
    host = colon === -1 ? value : value.slice(0, colon);
    port = colon === -1 ? undefined : value.slice(colon + 1);
    if (host === '' || !REG_NAME.test(host)) return false;
  }
  if (port !== undefined && port !== '') {
    if (!/^[0-9]{1,5}$/.test(port) || Number(port) > 65535) return false;
  }
  return true;
}

function countHost(raw: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host') n++;
  return n;
}

const ABSOLUTE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^#]*)$/;

/**
 * Checks (and for absolute-form targets normalises) the authority of a request.
 * Returns a decision; on `reject` nothing was changed that matters (the request is answered 400).
 */
export function checkAuthority(req: InboundRequest): AuthorityCheck {
  if (countHost(req.rawHeaders) > 1) return reject('more than one Host header field (RFC 9112 §3.2)');
  const host = req.headers.host;
  if (req.httpVersionMajor >= 2) {
    const authority = req.headers[':authority'] as string | undefined;
    if (authority !== undefined && !isValidAuthority(authority)) return reject(`invalid :authority ${JSON.stringify(authority)}`);
    if (host !== undefined && !isValidAuthority(host)) return reject(`invalid Host ${JSON.stringify(host)}`);
    if (authority !== undefined && host !== undefined && authority.toLowerCase() !== host.toLowerCase()) {
      return reject(`Host ${JSON.stringify(host)} disagrees with :authority ${JSON.stringify(authority)} (RFC 9113 §8.3.1)`);
    }
    return OK;
  }
  if (host === undefined && req.httpVersionMajor === 1 && req.httpVersionMinor >= 1) return reject('an HTTP/1.1 request needs a Host header field (RFC 9112 §3.2)');
  const url = req.url ?? '/';
  if (!url.startsWith('/') && url !== '*') {
    const m = ABSOLUTE.exec(url);
    if (!m) return reject(`request target ${JSON.stringify(url.slice(0, 100))} is not in origin or absolute form`);
    const scheme = m[1]!.toLowerCase();
    if (scheme !== 'http' && scheme !== 'https') return reject(`request target scheme ${JSON.stringify(scheme)} is not http(s)`);
    const authority = m[2]!;
    if (authority === '' || !isValidAuthority(authority)) return reject(`invalid authority ${JSON.stringify(authority)} in the request target`);
    const rest = m[3]!;
    // RFC 9112 §3.2.2: the target's authority wins; Host is replaced by it.
    req.url = rest === '' ? '/' : rest.startsWith('/') ? rest : `/${rest}`;
    req.headers.host = authority;
    return OK;
  }
  if (host !== undefined && !isValidAuthority(host)) return reject(`invalid Host ${JSON.stringify(host)}`);
  return OK;
}

/** The request's authority as received (:authority on HTTP/2, else Host), after `checkAuthority`. */
export function authorityOf(req: InboundRequest): string | undefined {
  return (req.headers[':authority'] as string | undefined) ?? req.headers.host;
}
