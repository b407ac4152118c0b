/**
 * Sticky sessions (HAProxy `cookie SRV insert`, Envoy stateful sessions):
 *
 * - `sticky: { cookie: NAME }`: sluice sets NAME to an opaque token naming the
 *   target: the first 16 bytes of HMAC-SHA256(key, upstream NUL target URL),
 *   base64url. The raw address never leaves the proxy. The key comes from the
 *   environment variable SLUICE_STICKY_KEY (set the same value on every instance
 *   and worker); without it, from the host name, so that workers and restarts on
 *   one host agree (opaque, but guessable by someone who knows the host name
 *   and the target addresses: set the variable where that matters).
 * - `sticky: { appCookie: NAME }`: the application's own session cookie. Its
 *   value → target mapping is learned from the Set-Cookie of responses (and
 *   from requests that carry a value sluice had not seen), kept in a bounded
 *   table (least recently used out first) that outlives policy reloads.
 */
import { createHmac } from 'node:crypto';
import { hostname } from 'node:os';
import { parse as parseCookie, serialize } from 'cookie';
import type { InboundRequest } from '../accept/context.js';
import type { StickyPolicy } from '../policy/types.js';

let key: Buffer | undefined;
function stickyKey(): Buffer {
  key ??= Buffer.from(process.env.SLUICE_STICKY_KEY || `sluice-sticky:${hostname()}`);
  return key;
}

/** Opaque, stable token naming a target of an upstream (22 characters, base64url). */
export function targetToken(upstream: string, url: string): string {
  return createHmac('sha256', stickyKey()).update(`${upstream}\0${url}`).digest().subarray(0, 16).toString('base64url');
}

/** Value of cookie `name` in the request, or undefined. */
export function requestCookie(req: InboundRequest, name: string): string | undefined {
  const raw = req.headers.cookie;
  if (!raw) return undefined;
  const header = Array.isArray(raw) ? raw.join('; ') : raw;
  // Cheap test first: most requests of other upstreams carry unrelated cookies.
  if (!header.includes(name)) return undefined;
  const v = parseCookie(header)[name];
  return v === '' ? undefined : v;
}

/** The Set-Cookie line that pins a client to `token`. */
export function stickyCookie(p: Extract<StickyPolicy, { kind: 'cookie' }>, token: string): string {
  return serialize(p.name, token, {
    path: '/',
    httpOnly: p.httpOnly,
    secure: p.secure,
    sameSite: p.sameSite.toLowerCase() as 'strict' | 'lax' | 'none',
    ...(p.maxAgeSec !== undefined ? { maxAge: p.maxAgeSec } : {}),
  });
}

/** Appends a Set-Cookie to response headers as node hands them over. */
export function appendSetCookie(headers: Record<string, string | string[] | undefined>, line: string): void {
  const prior = headers['set-cookie'];
  headers['set-cookie'] = prior === undefined ? [line] : Array.isArray(prior) ? [...prior, line] : [prior, line];
}

export type AppCookieChange = { kind: 'set'; value: string } | { kind: 'clear'; value: string | undefined };

/**
 * What the response's Set-Cookie says about the application cookie `name`:
 * a new value, a deletion (Max-Age ≤ 0 or an Expires in the past, RFC 6265 §5.2), or nothing.
 */
export function appCookieFromResponse(setCookie: string | string[] | undefined, name: string, nowMs: number): AppCookieChange | undefined {
  if (setCookie === undefined) return undefined;
  const lines = Array.isArray(setCookie) ? setCookie : [setCookie];
  let change: AppCookieChange | undefined;
  for (const line of lines) {
    const semi = line.indexOf(';');
    const pair = semi === -1 ? line : line.slice(0, semi);
    const eq = pair.indexOf('=');
    if (eq === -1 || pair.slice(0, eq).trim() !== name) continue;
    let value = pair.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    const attrs = semi === -1 ? '' : line.slice(semi + 1).toLowerCase();
    const maxAge = /(?:^|;)\s*max-age\s*=\s*(-?\d+)/.exec(attrs);
    const expires = /(?:^|;)\s*expires\s*=\s*([^;]+)/.exec(attrs);
    const gone =
      value === '' || (maxAge !== null && Number(maxAge[1]) <= 0) || (maxAge === null && expires !== null && Date.parse(expires[1]!) <= nowMs);
    change = gone ? { kind: 'clear', value: value || undefined } : { kind: 'set', value };
  }
  return change;
}

/** Learned application-cookie value → target URL; bounded, least recently used out first. */
export class SessionTable {
  private readonly map = new Map<string, string>();

  constructor(readonly capacity = 100_000) {}

  get size(): number {
    return this.map.size;
  }

  /** Target URL of a session, refreshing its recency. */
  get(value: string): string | undefined {
    const url = this.map.get(value);
    if (url !== undefined) {
      this.map.delete(value);
      this.map.set(value, url);
    }
    return url;
  }

  learn(value: string, url: string): void {
    this.map.delete(value);
    this.map.set(value, url);
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value!);
  }

  forget(value: string): void {
    this.map.delete(value);
  }
}
