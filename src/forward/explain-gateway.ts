/**
 * The gateway part of `sluice explain`: the access decision, the target a
 * request would get (and why: sticky session, hash key, balance policy) and
 * what the route's rewrites would send upstream.
 */
import type { RequestContext } from '../accept/context.js';
import type { IdentityVerifier } from '../classify/identity.js';
import { decideAccess } from '../classify/access.js';
import { choiceOf, type UpstreamPool } from './pool.js';
import { rewriteTarget } from './rewrite.js';

export interface GatewayExplanation {
  access: { decision: 'allow' | 'deny'; status?: number; rule: string; detail?: string };
  target: { url: string | null; reason: string };
  rewrite?: { path: string; headers: string[] };
}

export async function explainGateway(ctx: RequestContext, identity: IdentityVerifier | undefined, pool: UpstreamPool): Promise<GatewayExplanation> {
  const a = await decideAccess(ctx, identity);
  const access: GatewayExplanation['access'] =
    a.kind === 'allow' ? { decision: 'allow', rule: a.rule } : { decision: 'deny', status: a.error.status, rule: a.rule, detail: a.error.message };
  const u = pool.upstream;
  const m = pool.choose(ctx);
  const c = choiceOf(ctx);
  let reason: string;
  if (!m || !c) reason = 'no target passes its health check';
  else if (c.how === 'sticky') reason = `sticky session (${u.sticky!.kind === 'cookie' ? 'cookie' : 'appCookie'} ${u.sticky!.name})`;
  else if (u.balance === 'hash') {
    const on = u.hashOn.kind === 'ip' || u.hashOn.kind === 'path' ? u.hashOn.kind : `${u.hashOn.kind}:${u.hashOn.name}`;
    reason = c.hashKey !== undefined ? `ring hash of ${on} = ${JSON.stringify(c.hashKey)}` : `round-robin: the request has no ${on} to hash`;
  } else reason = `${u.balance} over ${pool.size} target(s): one possible pick`;
  if (c?.moved) reason += '; its session named a target that is unavailable, so it moves (cookie re-set)';
  else if (c && u.sticky?.kind === 'cookie' && c.how !== 'sticky') reason += `; the response sets cookie ${u.sticky.name}`;
  const route = ctx.route!;
  let rewrite: GatewayExplanation['rewrite'];
  if (route.rewrite || route.requestHeaders || route.responseHeaders) {
    const url = ctx.req.url ?? '/';
    const rh = route.requestHeaders;
    const headers = [
      ...(rh?.remove ?? []).map((n) => `remove ${n}`),
      ...(rh?.set ?? []).map(([n, v]) => `set ${n}: ${v}`),
      ...(rh?.add ?? []).map(([n, v]) => `add ${n}: ${v}`),
      ...(route.responseHeaders?.remove ?? []).map((n) => `response: remove ${n}`),
      ...(route.responseHeaders?.set ?? []).map(([n, v]) => `response: set ${n}: ${v}`),
    ];
    rewrite = { path: route.rewrite ? `${url} → ${rewriteTarget(route.rewrite, url)}` : `${url} (unchanged)`, headers };
  }
  return { access, target: { url: m?.target.url ?? null, reason }, ...(rewrite ? { rewrite } : {}) };
}
