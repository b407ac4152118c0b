/**
 * Class selection: the first class whose every condition holds, else the
 * default class. Cookies and query are parsed only when a class asks for them.
 */
import { parse as parseCookie } from 'cookie';
import type { ClassPolicy, Policy } from '../policy/types.js';
import type { RequestContext } from '../accept/context.js';
import { compileClientCert, compileCidrs, compileGlob, compileHost, compileMethods, compileValueMap, type NamedPredicate } from './matchers.js';
import { headerValue } from './route.js';
import { verifiedClientCert } from '../accept/tls.js';

/** Lazily parsed request facts shared by all class checks of one request. */
class Facts {
  private cookies: Record<string, string | undefined> | undefined;
  private query: URLSearchParams | undefined;
  constructor(readonly ctx: RequestContext) {}

  cookie(name: string): string | undefined {
    if (!this.cookies) {
      const raw = headerValue(this.ctx.req.headers.cookie);
      this.cookies = raw ? parseCookie(raw.replace(/, /g, '; ')) : {};
    }
    return this.cookies[name];
  }

  param(name: string): string | undefined {
    if (!this.query) {
      const url = this.ctx.req.url ?? '';
      const q = url.indexOf('?');
      this.query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
    }
    return this.query.get(name) ?? undefined;
  }
}

interface Check {
  /** Key path shown as the deciding rule, e.g. headers.x-tier. */
  readonly label: string;
  test(f: Facts): boolean;
}

function checksFor(k: ClassPolicy): Check[] {
  const m = k.match;
  if (!m) return [];
  const out: Check[] = [];
  if (m.methods) {
    const t = compileMethods(m.methods);
    out.push({ label: 'methods', test: (f) => t(f.ctx.method) });
  }
  if (m.pathPrefix !== undefined) {
    const p = m.pathPrefix;
    out.push({ label: 'pathPrefix', test: (f) => f.ctx.path.startsWith(p) });
  }
  if (m.path !== undefined) {
    const t = compileGlob(m.path);
    out.push({ label: 'path', test: (f) => t(f.ctx.path) });
  }
  if (m.pathRegex !== undefined) {
    const re = new RegExp(m.pathRegex);
    out.push({ label: 'pathRegex', test: (f) => re.test(f.ctx.path) });
  }
  if (m.host !== undefined) {
    const t = compileHost(m.host);
    out.push({ label: 'host', test: (f) => t(f.ctx.host) });
  }
  if (m.clientCert) {
    const t = compileClientCert(m.clientCert);
    out.push({ label: 'clientCert', test: (f) => t(verifiedClientCert(f.ctx.req)) });
  }
  if (m.clientIp) {
    const t = compileCidrs(m.clientIp);
    out.push({ label: 'clientIp', test: (f) => t(f.ctx.clientIp) });
  }
  const each = (label: string, preds: NamedPredicate[], get: (f: Facts, name: string) => string | undefined): void => {
    for (const p of preds) out.push({ label: `${label}.${p.name}`, test: (f) => p.test(get(f, p.name)) });
  };
  each('headers', compileValueMap(m.headers, true), (f, n) => headerValue(f.ctx.req.headers[n]));
  each('cookies', compileValueMap(m.cookies, false), (f, n) => f.cookie(n));
  each('query', compileValueMap(m.query, false), (f, n) => f.param(n));
  each('jwtClaims', compileValueMap(m.jwtClaims, false), (f, n) => claim(f.ctx.claims, n));
  return out;
}

/** A claim as a string: arrays of strings (e.g. roles) match if any element does via join. */
function claim(claims: Record<string, unknown> | undefined, name: string): string | undefined {
  if (!claims) return undefined;
  let v: unknown = claims;
  for (const part of name.split('.')) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[part] : undefined;
  if (v === undefined || v === null) return undefined;
  return typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);
}

export interface Decision {
  klass: ClassPolicy;
  /** Human-readable deciding rule, for explain and logs. */
  rule: string;
}

export class Classifier {
  private readonly compiled: { klass: ClassPolicy; checks: Check[]; rule: string }[];
  private readonly fallback: Decision;
  /** Whether any class needs verified claims (so the token must be checked first). */
  readonly needsClaims: boolean;

  constructor(policy: Policy) {
    this.compiled = policy.classes
      .filter((k) => k.match !== undefined)
      .map((k) => {
        const checks = checksFor(k);
        const labels = checks.map((c) => c.label).join(', ');
        return { klass: k, checks, rule: `classes[${k.index}] '${k.name}' matched${labels ? ` on ${labels}` : ' (empty match)'}` };
      });
    this.fallback = { klass: policy.defaultClass, rule: `defaultClass '${policy.defaultClass.name}' (no class matched)` };
    this.needsClaims = policy.classes.some((k) => k.match?.jwtClaims !== undefined || k.rateLimit?.key.startsWith('jwt:'));
  }

  classify(ctx: RequestContext): Decision {
    const facts = new Facts(ctx);
    outer: for (const c of this.compiled) {
      for (const chk of c.checks) if (!chk.test(facts)) continue outer;
      return { klass: c.klass, rule: c.rule };
    }
    return this.fallback;
  }
}
