/**
 * Everything derived from one policy generation: router, classifier, client
 * address rules, identity, upstream pools. Immutable once built; a request pins
 * the runtime current when it arrived (Pipeline.handle) and reads peer trust,
 * route, class and pools from it alone, so a reload mid-request never mixes two
 * generations in one request.
 */
import type { Clock } from '../clock.js';
import type { Policy } from '../policy/types.js';
import type { RequestContext } from '../accept/context.js';
import { Router } from '../classify/route.js';
import { Classifier, type Decision } from '../classify/classifier.js';
import { ClientIp } from '../classify/client-ip.js';
import { IdentityVerifier } from '../classify/identity.js';
import { UpstreamPool } from '../forward/pool.js';

export class Runtime {
  readonly router: Router;
  readonly classifier: Classifier;
  readonly clientIp: ClientIp;
  readonly identity: IdentityVerifier | undefined;
  readonly pools: ReadonlyMap<string, UpstreamPool>;

  constructor(
    readonly policy: Policy,
    previous: Runtime | undefined,
    clock: Clock,
  ) {
    this.router = new Router(policy.routes);
    this.classifier = new Classifier(policy);
    this.clientIp = new ClientIp(policy.trustedProxies);
    this.identity = policy.identity ? new IdentityVerifier(policy.identity.jwt) : undefined;
    const pools = new Map<string, UpstreamPool>();
    for (const u of policy.upstreams.values()) {
      const old = previous?.pools.get(u.name);
      if (old && old.canServe(u)) {
        // Timeouts and outlier settings are read per request, so the new ones apply at once.
        old.upstream = u;
        pools.set(u.name, old);
      } else pools.set(u.name, new UpstreamPool(u, clock, old));
    }
    this.pools = pools;
  }

  /**
   * Route, client address, identity and class of a request (also used by `sluice explain`). Synchronous (no
   * promise, no extra turn) unless a class needs verified JWT claims.
   */
  decide(ctx: RequestContext): Decision | undefined | Promise<Decision | undefined> {
    const strip = this.policy.trustedHeaders;
    if (strip.length > 0 && !this.clientIp.peerTrusted(ctx.peer)) {
      // Only trusted proxies may set these; from anyone else they are forgeries.
      for (const h of strip) delete ctx.req.headers[h];
    }
    ctx.route = this.router.match(ctx);
    if (!ctx.route) return undefined;
    ctx.clientIp = this.clientIp.of(ctx.req, ctx.peer);
    if (this.identity && this.classifier.needsClaims) {
      return this.identity.verify(ctx.req).then((claims) => {
        ctx.claims = claims;
        return this.classify(ctx);
      });
    }
    return this.classify(ctx);
  }

  private classify(ctx: RequestContext): Decision {
    const d = this.classifier.classify(ctx);
    ctx.klass = d.klass;
    ctx.rule = d.rule;
    return d;
  }

  /** Pools that `next` no longer uses wind down as their requests finish. */
  retire(next: Runtime): void {
    for (const [name, pool] of this.pools) if (next.pools.get(name) !== pool) pool.retire();
  }

  close(): void {
    for (const pool of this.pools.values()) pool.close();
  }
}
