/**
 * Warnings for a valid policy (`sluice check`): things that parse and compile
 * but are very likely mistakes. Errors stop a policy from loading; warnings do not.
 *
 * - unreachable class: no `match` and not the default class (the classifier only
 *   tries classes with a match), or shadowed by an earlier class whose every
 *   condition is implied by this one's (first match wins, so this one never wins);
 * - the admin listener beyond loopback without a token; `serverTiming: trusted`
 *   with no trusted proxy;
 * - a reserve that leaves a small upstream almost no shared slot: every class
 *   without a reserve competes for the rest (compare HAProxy `maxconn` minus
 *   reserved slots; an Envoy priority with no headroom).
 *
 * Shadowing is decided conservatively: a warning means the class can never be
 * chosen; silence does not prove that it can (regexes and globs are compared as text).
 */
import type { RawClassMatch, RawValueMatcher } from './schema.js';
import type { ClassPolicy, Policy } from './types.js';

export interface LintWarning {
  /** Stable kind, for tests and scripts. */
  code: 'class-unreachable' | 'class-shadowed' | 'reserve-starves-shared' | 'admin-exposed' | 'server-timing-never';
  /** Key path, e.g. classes[2]. */
  path: string;
  message: string;
}

/** A reserve leaves "almost no" shared slot when what is left is at most this fraction of maxConcurrent (or 1 slot). */
export const SHARED_FRACTION = 0.25;

export function lintPolicy(p: Policy): LintWarning[] {
  return [...unreachableClasses(p), ...starvedUpstreams(p), ...exposure(p)];
}

/** The admin port reachable beyond loopback without a token; serverTiming: trusted with nobody trusted. */
function exposure(p: Policy): LintWarning[] {
  const out: LintWarning[] = [];
  const h = p.admin.host;
  const loopback = h === '::1' || h.startsWith('127.') || h === 'localhost';
  if (!loopback && p.admin.token === undefined) {
    out.push({
      code: 'admin-exposed',
      path: 'admin.host',
      message: `admin listens on ${h} without a token: anyone who reaches it can read /status and POST /reload (set admin.token and admin.requireToken)`,
    });
  }
  if (p.serverTiming === 'trusted' && p.trustedProxies.length === 0) {
    out.push({ code: 'server-timing-never', path: 'serverTiming', message: 'serverTiming: trusted with no trustedProxies: no client gets Server-Timing (use off to say so)' });
  }
  return out;
}

function unreachableClasses(p: Policy): LintWarning[] {
  const out: LintWarning[] = [];
  const earlier: ClassPolicy[] = [];
  for (const k of p.classes) {
    const where = `classes[${k.index}]`;
    if (k.match === undefined) {
      if (k !== p.defaultClass) {
        out.push({
          code: 'class-unreachable',
          path: where,
          message: `${where} '${k.name}' has no match and is not the defaultClass ('${p.defaultClass.name}'): no request can reach it`,
        });
      }
      continue;
    }
    const shadow = earlier.find((e) => implies(k.match!, e.match!));
    if (shadow) {
      out.push({
        code: 'class-shadowed',
        path: where,
        message: `${where} '${k.name}' is shadowed by classes[${shadow.index}] '${shadow.name}': every request it matches is taken by that earlier class (first match wins)`,
      });
    }
    earlier.push(k);
  }
  return out;
}

/** Whether every request matching `later` also matches `first` (each condition of `first` follows from `later`'s). */
export function implies(later: Readonly<RawClassMatch>, first: Readonly<RawClassMatch>): boolean {
  if (first.methods && !(later.methods && later.methods.every((m) => first.methods!.some((f) => f.toUpperCase() === m.toUpperCase())))) return false;
  if (first.pathPrefix !== undefined) {
    const lp = later.pathPrefix;
    if (lp === undefined || !lp.startsWith(first.pathPrefix)) return false;
  }
  for (const key of ['path', 'pathRegex', 'host', 'clientIp'] as const) {
    if (first[key] !== undefined && !sameJson(first[key], later[key])) return false;
  }
  for (const key of ['headers', 'cookies', 'query', 'jwtClaims'] as const) {
    const f = first[key];
    if (!f) continue;
    const l = later[key] ?? {};
    const lower = key === 'headers';
    const lv = new Map(Object.entries(l).map(([n, v]) => [lower ? n.toLowerCase() : n, v]));
    for (const [name, want] of Object.entries(f)) {
      const have = lv.get(lower ? name.toLowerCase() : name);
      if (have === undefined || !valueImplies(have, want)) return false;
    }
  }
  return true;
}

/** Whether a value accepted by `later` is always accepted by `first`. */
function valueImplies(later: RawValueMatcher, first: RawValueMatcher): boolean {
  const laterSet = typeof later === 'string' ? [later] : Array.isArray(later) ? later : undefined;
  if (typeof first === 'string' || Array.isArray(first)) {
    const firstSet = new Set(typeof first === 'string' ? [first] : first);
    return laterSet !== undefined && laterSet.every((v) => firstSet.has(v));
  }
  if ('present' in first) {
    if (laterSet !== undefined) return first.present;
    const l = later as Exclude<RawValueMatcher, string | string[]>;
    if ('regex' in l) return first.present;
    return l.present === first.present;
  }
  return sameJson(first, later);
}

function sameJson(a: unknown, b: unknown): boolean {
  return b !== undefined && JSON.stringify(a) === JSON.stringify(b);
}

function starvedUpstreams(p: Policy): LintWarning[] {
  const reserved = p.classes.reduce((s, k) => s + k.reserve, 0);
  if (reserved === 0) return [];
  const holders = p.classes.filter((k) => k.reserve > 0).map((k) => `'${k.name}' ${k.reserve}`).join(', ');
  const out: LintWarning[] = [];
  for (const u of p.upstreams.values()) {
    if (!Number.isFinite(u.maxConcurrent)) continue;
    const shared = u.maxConcurrent - reserved;
    if (shared > 0 && (shared <= 1 || shared <= u.maxConcurrent * SHARED_FRACTION)) {
      out.push({
        code: 'reserve-starves-shared',
        path: `upstreams '${u.name}'`,
        message: `upstream '${u.name}' (maxConcurrent ${u.maxConcurrent}): class reserves (${holders}) leave only ${shared} shared slot(s) for every other class`,
      });
    }
  }
  return out;
}
