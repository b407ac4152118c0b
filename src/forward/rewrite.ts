/**
 * Route rewrites applied to what goes upstream and what comes back
 * (Envoy prefix_rewrite / regex_rewrite and request/response header rules,
 * Traefik StripPrefix / ReplacePathRegex / Headers middlewares):
 *
 * - path: `stripPrefix`, `replacePrefix: { from, to }`, or `regex` + `replace`
 *   (every match replaced); the query string is kept as it came; a result not
 *   starting with `/` gets one.
 * - request headers: `remove`, then `set` (replaces), then `add` (appends);
 *   after the X-Forwarded-* headers, so rules can override them.
 * - response headers: `remove`, then `set`; on forwarded responses only (sluice's
 *   own problem+json answers are not rewritten).
 */
import type { OutgoingHttpHeaders, RequestOptions } from 'node:http';
import type { RequestContext } from '../accept/context.js';
import type { RequestHeaderRules, ResponseHeaderRules, RewritePolicy } from '../policy/types.js';
import { withRequestId } from './request-id.js';

/** The rewritten path (without query). */
export function rewritePath(rw: RewritePolicy, path: string): string {
  let out: string;
  switch (rw.kind) {
    case 'strip':
      out = path.startsWith(rw.prefix) ? path.slice(rw.prefix.length) : path;
      break;
    case 'replace':
      out = path.startsWith(rw.from) ? rw.to + path.slice(rw.from.length) : path;
      break;
    case 'regex':
      out = path.replace(rw.regex, rw.replace);
      break;
  }
  if (!out.startsWith('/')) out = `/${out}`;
  return out.replace(/^\/\/+/, '/');
}

/** Request target (path and query) after the route's rewrite. */
export function rewriteTarget(rw: RewritePolicy, url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? rewritePath(rw, url) : rewritePath(rw, url.slice(0, q)) + url.slice(q);
}

export function applyRequestHeaderRules(r: RequestHeaderRules, headers: OutgoingHttpHeaders): void {
  for (const name of r.remove) delete headers[name];
  for (const [name, value] of r.set) headers[name] = value;
  for (const [name, value] of r.add) {
    const prior = headers[name];
    if (prior === undefined) headers[name] = value;
    else if (Array.isArray(prior)) headers[name] = [...prior, value];
    else headers[name] = [String(prior), value];
  }
}

export function applyResponseHeaderRules(r: ResponseHeaderRules, headers: Record<string, string | string[] | undefined>): void {
  for (const name of r.remove) delete headers[name];
  for (const [name, value] of r.set) headers[name] = value;
}

/** The route's path rewrite and request header rules, on the options http2-proxy passes to onReq. */
export function applyRequestRules(ctx: RequestContext, options: RequestOptions): void {
  const route = ctx.route;
  if (!route) return;
  if (route.rewrite && options.path) options.path = rewriteTarget(route.rewrite, options.path);
  if (route.requestHeaders) applyRequestHeaderRules(route.requestHeaders, (options.headers ??= {}) as OutgoingHttpHeaders);
}

/**
 * What sluice adds to the upstream response headers before they are written: the
 * request id (forward/request-id.ts), then the route's response header rules.
 */
export function applyResponseRules(ctx: RequestContext, headers: Record<string, string | string[] | undefined>): void {
  withRequestId(ctx, headers);
  const rules = ctx.route?.responseHeaders;
  if (rules) applyResponseHeaderRules(rules, headers);
}
