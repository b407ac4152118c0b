/**
 * Compiled matchers: each policy condition becomes a small predicate built once
 * per policy load. Conditions are ANDed; an absent condition always holds.
 */
import picomatch from 'picomatch';
import ipaddr from 'ipaddr.js';
import type { RawValueMatcher } from '../policy/schema.js';
import { normalise, parseCidr, type Cidr } from '../policy/units.js';

export type ValuePredicate = (value: string | undefined) => boolean;

/** exact | one of | { regex } | { present } */
export function compileValue(m: RawValueMatcher): ValuePredicate {
  if (typeof m === 'string') return (v) => v === m;
  if (Array.isArray(m)) {
    const set = new Set(m);
    return (v) => v !== undefined && set.has(v);
  }
  if ('regex' in m) {
    const re = new RegExp(m.regex);
    return (v) => v !== undefined && re.test(v);
  }
  const want = m.present;
  return (v) => (v !== undefined) === want;
}

export interface NamedPredicate {
  readonly name: string;
  readonly test: ValuePredicate;
}

export function compileValueMap(map: Record<string, RawValueMatcher> | undefined, lowerNames: boolean): NamedPredicate[] {
  return Object.entries(map ?? {}).map(([name, m]) => ({ name: lowerNames ? name.toLowerCase() : name, test: compileValue(m) }));
}

/** "api.example.com" exact, "*.example.com" any subdomain; case-insensitive. */
export function compileHost(spec: string | string[]): (host: string) => boolean {
  const list = (Array.isArray(spec) ? spec : [spec]).map((s) => s.toLowerCase());
  const exact = new Set(list.filter((s) => !s.startsWith('*.')));
  const suffixes = list.filter((s) => s.startsWith('*.')).map((s) => s.slice(1));
  return (host) => exact.has(host) || suffixes.some((s) => host.endsWith(s) && host.length > s.length);
}

/** Path glob: `*` within one segment, `**` across segments. */
export function compileGlob(glob: string): (path: string) => boolean {
  return picomatch(glob, { dot: true });
}

export function compileCidrs(list: readonly string[]): (ip: string) => boolean {
  const cidrs: Cidr[] = [];
  for (const c of list) {
    const v = parseCidr(c);
    if (v) cidrs.push(v);
  }
  return (ip) => {
    if (!ip) return false;
    let addr: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      addr = normalise(ipaddr.parse(ip));
    } catch {
      return false;
    }
    for (const [range, bits] of cidrs) {
      if (range.kind() === addr.kind() && addr.match(range as never, bits)) return true;
    }
    return false;
  };
}

export function compileMethods(methods: readonly string[]): (m: string) => boolean {
  const set = new Set(methods.map((m) => m.toUpperCase()));
  return (m) => set.has(m);
}

/** The verified client certificate of a request's TLS connection (see accept/tls.ts). */
export interface ClientCertFacts {
  /** Subject DN as "CN=partner,O=Example". */
  readonly subject: string;
  readonly cn: string | undefined;
  /** subjectAltName entries without their type prefix. */
  readonly san: readonly string[];
}

/** match.clientCert: every given field must hold; `san` holds when any entry matches; `{}` holds for any verified certificate. */
export function compileClientCert(spec: {
  present?: boolean;
  subject?: RawValueMatcher;
  cn?: RawValueMatcher;
  san?: RawValueMatcher;
}): (cert: ClientCertFacts | undefined) => boolean {
  const subject = spec.subject !== undefined ? compileValue(spec.subject) : undefined;
  const cn = spec.cn !== undefined ? compileValue(spec.cn) : undefined;
  const san = spec.san !== undefined ? compileValue(spec.san) : undefined;
  return (cert) => {
    // present: false matches requests without a verified certificate; anything else needs one.
    if (cert === undefined || spec.present === false) return cert === undefined && spec.present === false;
    if (subject && !subject(cert.subject)) return false;
    if (cn && !cn(cert.cn)) return false;
    if (san && !cert.san.some((v) => san(v))) return false;
    return true;
  };
}
