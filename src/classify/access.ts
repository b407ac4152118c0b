/**
 * Access control of routes and classes (`access: { allow, deny, requireIdentity,
 * methods }`), decided after routing and classification and BEFORE the request
 * takes a rate-limit token or a queue slot, so refused traffic costs the
 * protected upstream nothing. The route's rules are checked first, then the class's;
 * within each:
 *
 * 1. `deny` CIDRs, then `allow` CIDRs (when given) on the client address as
 *    decided by trustedProxies → 403 (nginx allow/deny, Envoy RBAC on source IP);
 * 2. `methods` → 405 with `Allow` (RFC 9110 §15.5.6);
 * 3. `requireIdentity` → 401 with `WWW-Authenticate: Bearer` (RFC 6750 §3; with
 *    `error="invalid_token"` when a token was presented) and the reason in the
 *    problem+json detail.
 *
 * The same gate also answers a fast 503 when the route's upstream has no
 * target passing its active health check (see forward/health.ts).
 */
import { ProxyError } from '../errors.js';
import type { RequestContext } from '../accept/context.js';
import type { AccessPolicy } from '../policy/types.js';
import { compileCidrs } from './matchers.js';
import type { IdentityVerifier } from './identity.js';

/** A decision is a value: allowed, or refused with the error to answer and the rule that decided. */
export type AccessDecision = { kind: 'allow'; rule: string } | { kind: 'deny'; error: ProxyError; rule: string };

interface CompiledAccess {
  readonly deny: ((ip: string) => boolean) | undefined;
  readonly allow: ((ip: string) => boolean) | undefined;
  readonly methods: ReadonlySet<string> | undefined;
  readonly allowHeader: string;
  readonly requireIdentity: boolean;
}

function compile(a: AccessPolicy): CompiledAccess {
  return {
    deny: a.deny.length > 0 ? compileCidrs(a.deny) : undefined,
    allow: a.allow.length > 0 ? compileCidrs(a.allow) : undefined,
    methods: a.methods ? new Set(a.methods) : undefined,
    allowHeader: (a.methods ?? []).join(', '),
    requireIdentity: a.requireIdentity,
  };
}

const compiled = new WeakMap<AccessPolicy, CompiledAccess>();
function compiledOf(a: AccessPolicy): CompiledAccess {
  let c = compiled.get(a);
  if (!c) compiled.set(a, (c = compile(a)));
  return c;
}

const ALLOW: AccessDecision = Object.freeze({ kind: 'allow', rule: 'no access rule refused the request' });

async function check(
  a: AccessPolicy,
  where: string,
  ctx: RequestContext,
  identity: IdentityVerifier | undefined,
): Promise<AccessDecision | undefined> {
  const c = compiledOf(a);
  const ip = ctx.clientIp || ctx.peer;
  const className = ctx.klass?.name;
  if (c.deny?.(ip)) {
    return { kind: 'deny', rule: `${where}.access.deny`, error: new ProxyError('FORBIDDEN', `client ${ip} is denied by ${where}`, { className }) };
  }
  if (c.allow && !c.allow(ip)) {
    return { kind: 'deny', rule: `${where}.access.allow`, error: new ProxyError('FORBIDDEN', `client ${ip} is not in the allow list of ${where}`, { className }) };
  }
  if (c.methods && !c.methods.has(ctx.method)) {
    return {
      kind: 'deny',
      rule: `${where}.access.methods`,
      error: new ProxyError('METHOD_NOT_ALLOWED', `${ctx.method} is not allowed by ${where} (allowed: ${c.allowHeader})`, {
        className,
        headers: { allow: c.allowHeader },
      }),
    };
  }
  if (c.requireIdentity && ctx.claims === undefined) {
    // Compile guarantees identity.jwt exists when requireIdentity is set.
    const r = identity ? await identity.check(ctx.req) : { verified: false as const, reason: 'no identity verifier configured' };
    if (r.verified) ctx.claims = r.claims;
    else {
      const presented = identity?.token(ctx.req) !== undefined;
      const challenge = presented
        ? `Bearer realm="sluice", error="invalid_token", error_description="${r.reason.replace(/["\\\r\n]/g, ' ').slice(0, 200)}"`
        : 'Bearer realm="sluice"';
      return {
        kind: 'deny',
        rule: `${where}.access.requireIdentity`,
        error: new ProxyError('UNAUTHORIZED', `${where} requires a valid token: ${r.reason}`, { className, headers: { 'www-authenticate': challenge } }),
      };
    }
  }
  return undefined;
}

/** The access decision for a routed and classified request: the route's rules, then its class's. */
export async function decideAccess(ctx: RequestContext, identity: IdentityVerifier | undefined): Promise<AccessDecision> {
  const route = ctx.route;
  if (route?.access) {
    const d = await check(route.access, `route '${route.name}'`, ctx, identity);
    if (d) return d;
  }
  const klass = ctx.klass;
  if (klass?.access) {
    const d = await check(klass.access, `class '${klass.name}'`, ctx, identity);
    if (d) return d;
  }
  return ALLOW;
}

/** What the gate needs of an upstream pool. */
export interface GatePool {
  allDown(): boolean;
  noTargetError(ctx: RequestContext): ProxyError;
}

/**
 * The pre-admission gate (one call in the pipeline, before rate limits and the
 * queue): the access decision, then a fast 503 when the upstream has no
 * healthy target. Undefined: go on.
 */
export function admissionGate(
  ctx: RequestContext,
  identity: IdentityVerifier | undefined,
  pool: GatePool | undefined,
): ProxyError | undefined | Promise<ProxyError | undefined> {
  // Synchronous unless an access rule must verify a token: no promise on the common path.
  if (ctx.route?.access || ctx.klass?.access) return gateWithAccess(ctx, identity, pool);
  return pool?.allDown() ? pool.noTargetError(ctx) : undefined;
}

async function gateWithAccess(ctx: RequestContext, identity: IdentityVerifier | undefined, pool: GatePool | undefined): Promise<ProxyError | undefined> {
  const d = await decideAccess(ctx, identity);
  if (d.kind === 'deny') return d.error;
  return pool?.allDown() ? pool.noTargetError(ctx) : undefined;
}
