/**
 * Class selection: the first class whose every condition holds, else the
 * default class. Request facts (facts.ts) are parsed only when a class asks for them
 * and are shared with the rate-limit key of the same request.
 */
import type { ClassPolicy, Policy } from '../policy/types.js';
import type { RequestContext } from '../accept/context.js';
import { compileClientCert, compileCidrs, compileGlob, compileHost, compileMethods, compileValueMap, type NamedPredicate } from './matchers.js';
import { type Facts, factsOf } from './facts.js';
import { verifiedClientCert } from '../accept/tls.js';

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
  each('headers', compileValueMap(m.headers, true), (f, n) => f.header(n));
  each('cookies', compileValueMap(m.cookies, false), (f, n) => f.cookie(n));
  each('query', compileValueMap(m.query, false), (f, n) => f.param(n));
  each('jwtClaims', compileValueMap(m.jwtClaims, false), (f, n) => f.claim(n));
  return out;
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
    const facts = factsOf(ctx);
    outer: for (const c of this.compiled) {
      for (const chk of c.checks) if (!chk.test(facts)) continue outer;
      return { klass: c.klass, rule: c.rule };
    }
    return this.fallback;
  }
}
