/**
 * One lazy view of a request's facts (headers, cookies, query parameters,
 * verified JWT claims), shared by everything that reads them for one request:
 * class matching (classifier.ts) and rate-limit keys (admit/limiter.ts). Each
 * fact is parsed at most once per request and only when something asks for it,
 * so a header and the same header read by a rate-limit key can never disagree.
 *
 * Conventions (one for every reader):
 * - header: lower-case name; repeated headers count as their comma-joined value (RFC 9110 §5.3).
 * - cookie: the Cookie header(s) parsed with `cookie`; several Cookie fields (HTTP/2
 *   splits them, RFC 9113 §8.2.3) are joined with "; ".
 * - param: the first value of a query parameter.
 * - claim: a dotted path into the verified claims (`org.id` walks `org` → `id`);
 *   strings as they are, other values as JSON; absent or null is undefined.
 */
import { parse as parseCookie } from 'cookie';
import type { RequestContext } from '../accept/context.js';

const kFacts = Symbol('sluice.facts');

export class Facts {
  private cookies: Record<string, string | undefined> | undefined;
  private query: URLSearchParams | undefined;
  constructor(readonly ctx: RequestContext) {}

  header(name: string): string | undefined {
    const v = this.ctx.req.headers[name];
    return Array.isArray(v) ? v.join(', ') : v;
  }

  cookie(name: string): string | undefined {
    if (!this.cookies) {
      const raw = this.ctx.req.headers.cookie as string | string[] | undefined;
      const joined = Array.isArray(raw) ? raw.join('; ') : raw;
      this.cookies = joined ? parseCookie(joined.replace(/, /g, '; ')) : {};
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

  /** A claim by dotted path; undefined while claims are not (yet) verified. */
  claim(path: string): string | undefined {
    return claimAt(this.ctx.claims, path);
  }
}

/** The facts of a request, created on first use and kept on the context. */
export function factsOf(ctx: RequestContext): Facts {
  const c = ctx as RequestContext & { [kFacts]?: Facts };
  return (c[kFacts] ??= new Facts(ctx));
}

/** A claim by dotted path (`org.id`), as a string; see the module comment. */
export function claimAt(claims: Record<string, unknown> | undefined, path: string): string | undefined {
  if (!claims) return undefined;
  let v: unknown = claims;
  for (const part of path.split('.')) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[part] : undefined;
  if (v === undefined || v === null) return undefined;
  return typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);
}
