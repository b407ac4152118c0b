/**
 * Compilation of the gateway keys (issue 14): balance, hashOn, sticky,
 * healthCheck on upstreams; rewrite, requestHeaders, responseHeaders, access on
 * routes; access on classes. Kept apart from compile.ts, which calls these.
 */
import type { RawAccess, RawHealthCheck, RawRequestHeaders, RawResponseHeaders, RawRewrite, RawSticky, RawUpstream } from './schema.js';
import type { AccessPolicy, HashKey, HealthCheckPolicy, RequestHeaderRules, ResponseHeaderRules, RewritePolicy, StickyPolicy } from './types.js';
import type { Cidr } from './units.js';

type Path = (string | number)[];

/** The part of compile.ts's Checker these helpers use. */
export interface GatewayChecker {
  fail(path: Path, message: string, atKey?: boolean): void;
  duration(text: string | undefined, fallback: string, path: Path): number;
  cidrs(list: readonly string[] | undefined, path: Path): Cidr[];
}

export const GATEWAY_DEFAULTS = {
  healthCheck: { interval: '5s', timeout: '1s', healthyThreshold: 2, unhealthyThreshold: 3 },
  stickyHttpOnly: true,
  stickySecure: false,
  stickySameSite: 'Lax',
} as const;

/** "header:x-user" → { kind: 'header', name: 'x-user' }. The schema has checked the form. */
export function compileHashOn(text: string | undefined): HashKey {
  const t = text ?? 'ip';
  if (t === 'ip' || t === 'path') return Object.freeze({ kind: t });
  const i = t.indexOf(':');
  const kind = t.slice(0, i);
  const name = t.slice(i + 1);
  return kind === 'header' ? Object.freeze({ kind: 'header', name: name.toLowerCase() }) : Object.freeze({ kind: 'cookie', name });
}

export function compileSticky(s: RawSticky | undefined, c: GatewayChecker, p: Path): StickyPolicy | undefined {
  if (!s) return undefined;
  if ('appCookie' in s) return Object.freeze({ kind: 'app', name: s.appCookie });
  const sameSite = s.sameSite ?? GATEWAY_DEFAULTS.stickySameSite;
  const secure = s.secure ?? GATEWAY_DEFAULTS.stickySecure;
  // Browsers drop SameSite=None cookies that are not Secure (RFC 6265bis §5.4.7).
  if (sameSite === 'None' && !secure) c.fail([...p, 'sameSite'], 'sameSite: None needs secure: true (browsers drop the cookie otherwise)');
  const ttlMs = s.ttl !== undefined ? c.duration(s.ttl, '0s', [...p, 'ttl']) : undefined;
  return Object.freeze({
    kind: 'cookie',
    name: s.cookie,
    ...(ttlMs !== undefined ? { maxAgeSec: Math.max(1, Math.round(ttlMs / 1000)) } : {}),
    secure,
    httpOnly: s.httpOnly ?? GATEWAY_DEFAULTS.stickyHttpOnly,
    sameSite,
  });
}

function expectRanges(e: RawHealthCheck['expectStatus']): (readonly [number, number])[] {
  if (e === undefined) return [[200, 299]];
  if (typeof e === 'number') return [[e, e]];
  if (Array.isArray(e)) return e.map((n) => [n, n] as const);
  if (e.endsWith('xx')) {
    const base = Number(e[0]) * 100;
    return [[base, base + 99]];
  }
  const [a, b] = e.split('-').map(Number) as [number, number];
  return [[a, b]];
}

export function compileHealthCheck(h: RawHealthCheck | undefined, c: GatewayChecker, p: Path): HealthCheckPolicy | undefined {
  if (!h) return undefined;
  const d = GATEWAY_DEFAULTS.healthCheck;
  const intervalMs = c.duration(h.interval, d.interval, [...p, 'interval']);
  const timeoutMs = c.duration(h.timeout, d.timeout, [...p, 'timeout']);
  if (intervalMs < 10) c.fail([...p, 'interval'], 'must be at least 10ms');
  if (timeoutMs <= 0) c.fail([...p, 'timeout'], 'must be more than 0');
  const expect = expectRanges(h.expectStatus);
  expect.forEach(([a, b]) => {
    if (a > b) c.fail([...p, 'expectStatus'], `empty status range ${a}-${b}`);
  });
  return Object.freeze({
    path: h.path,
    intervalMs,
    timeoutMs,
    healthyThreshold: h.healthyThreshold ?? d.healthyThreshold,
    unhealthyThreshold: h.unhealthyThreshold ?? d.unhealthyThreshold,
    expect: Object.freeze(expect.map((r) => Object.freeze(r))),
  });
}

/** Upstream-level consistency: hashOn only with balance: hash. */
export function checkBalance(u: RawUpstream, c: GatewayChecker, p: Path): void {
  if (u.hashOn !== undefined && u.balance !== 'hash') c.fail([...p, 'hashOn'], "hashOn applies only with balance: hash", true);
}

export function compileRewrite(r: RawRewrite | undefined, c: GatewayChecker, p: Path): RewritePolicy | undefined {
  if (!r) return undefined;
  if ('stripPrefix' in r) return Object.freeze({ kind: 'strip', prefix: r.stripPrefix.replace(/\/+$/, '') });
  if ('replacePrefix' in r) {
    pathText(r.replacePrefix.to, c, [...p, 'replacePrefix', 'to']);
    return Object.freeze({ kind: 'replace', from: r.replacePrefix.from, to: r.replacePrefix.to });
  }
  pathText(r.replace, c, [...p, 'replace']);
  try {
    // Every match is replaced, as Envoy's regex_rewrite does.
    return Object.freeze({ kind: 'regex', regex: new RegExp(r.regex, 'g'), replace: r.replace });
  } catch (err) {
    c.fail([...p, 'regex'], `invalid regular expression: ${(err as Error).message}`);
    return undefined;
  }
}

/** Text that ends up in the request line: no whitespace or control characters. */
function pathText(t: string, c: GatewayChecker, p: Path): void {
  if (/[\s\x00-\x1f\x7f]/.test(t)) c.fail(p, 'a path cannot hold spaces or control characters (percent-encode them)');
}

const TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
/** Headers sluice owns or that would break framing if a rule touched them. */
const FORBIDDEN = new Set(['host', 'connection', 'content-length', 'transfer-encoding', 'upgrade', 'te', 'keep-alive']);

function pairs(map: Record<string, string> | undefined, c: GatewayChecker, p: Path): (readonly [string, string])[] {
  return Object.entries(map ?? {}).flatMap(([k, v]) => {
    const name = k.toLowerCase();
    if (!TOKEN.test(k)) c.fail([...p, k], `not a header name: ${JSON.stringify(k)}`, true);
    else if (FORBIDDEN.has(name) || name.startsWith(':')) c.fail([...p, k], `header '${k}' cannot be changed by a rule`, true);
    else if (/[\r\n\0]/.test(v)) c.fail([...p, k], 'header values cannot hold CR, LF or NUL');
    else return [Object.freeze([name, v] as const)];
    return [];
  });
}

function names(list: readonly string[] | undefined, c: GatewayChecker, p: Path): string[] {
  return (list ?? []).flatMap((n, i) => {
    const name = n.toLowerCase();
    if (FORBIDDEN.has(name)) {
      c.fail([...p, i], `header '${n}' cannot be removed by a rule`);
      return [];
    }
    return [name];
  });
}

export function compileRequestHeaders(h: RawRequestHeaders | undefined, c: GatewayChecker, p: Path): RequestHeaderRules | undefined {
  if (!h) return undefined;
  return Object.freeze({
    set: Object.freeze(pairs(h.set, c, [...p, 'set'])),
    add: Object.freeze(pairs(h.add, c, [...p, 'add'])),
    remove: Object.freeze(names(h.remove, c, [...p, 'remove'])),
  });
}

export function compileResponseHeaders(h: RawResponseHeaders | undefined, c: GatewayChecker, p: Path): ResponseHeaderRules | undefined {
  if (!h) return undefined;
  return Object.freeze({
    set: Object.freeze(pairs(h.set, c, [...p, 'set'])),
    remove: Object.freeze(names(h.remove, c, [...p, 'remove'])),
  });
}

/**
 * `requireIdentity` needs identity.jwt: without a verifier, no token could ever pass.
 */
export function compileAccess(a: RawAccess | undefined, c: GatewayChecker, p: Path, hasIdentity: boolean): AccessPolicy | undefined {
  if (!a) return undefined;
  c.cidrs(a.allow, [...p, 'allow']);
  c.cidrs(a.deny, [...p, 'deny']);
  if (a.requireIdentity && !hasIdentity) c.fail([...p, 'requireIdentity'], 'requireIdentity needs identity.jwt to verify tokens');
  if (a.allow !== undefined && a.allow.length === 0) c.fail([...p, 'allow'], 'an empty allow list refuses everyone; remove it or name who is allowed');
  return Object.freeze({
    allow: Object.freeze([...(a.allow ?? [])]),
    deny: Object.freeze([...(a.deny ?? [])]),
    requireIdentity: a.requireIdentity ?? false,
    ...(a.methods ? { methods: Object.freeze([...new Set(a.methods.map((m) => m.toUpperCase()))]) } : {}),
  });
}
