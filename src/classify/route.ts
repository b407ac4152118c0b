/** Route selection: first route whose conditions all hold. */
import type { RoutePolicy } from '../policy/types.js';
import type { RequestContext } from '../accept/context.js';
import { compileHost, compileMethods, compileValueMap, type NamedPredicate } from './matchers.js';

interface CompiledRoute {
  route: RoutePolicy;
  pathPrefix: string | undefined;
  host: ((h: string) => boolean) | undefined;
  methods: ((m: string) => boolean) | undefined;
  headers: NamedPredicate[];
}

export class Router {
  private readonly compiled: CompiledRoute[];

  constructor(routes: readonly RoutePolicy[]) {
    this.compiled = routes.map((route) => ({
      route,
      pathPrefix: route.match.pathPrefix,
      host: route.match.host !== undefined ? compileHost(route.match.host) : undefined,
      methods: route.match.methods ? compileMethods(route.match.methods) : undefined,
      headers: compileValueMap(route.match.headers, true),
    }));
  }

  match(ctx: RequestContext): RoutePolicy | undefined {
    const headers = ctx.req.headers;
    outer: for (const r of this.compiled) {
      if (r.pathPrefix !== undefined && !ctx.path.startsWith(r.pathPrefix)) continue;
      if (r.methods && !r.methods(ctx.method)) continue;
      if (r.host && !r.host(ctx.host)) continue;
      for (const h of r.headers) if (!h.test(headerValue(headers[h.name]))) continue outer;
      return r.route;
    }
    return undefined;
  }
}

/** Repeated headers count as their comma-joined value, as RFC 9110 defines. */
export function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}
