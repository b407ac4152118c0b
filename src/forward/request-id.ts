/**
 * X-Request-Id: taken from a trusted peer (trustedProxies) when it is a sane
 * token, otherwise generated; forwarded upstream (forward/headers.ts) and put on
 * the response when it is written: the upstream's response headers
 * (`withRequestId`, unless the upstream sent its own), or sluice's own answer
 * (pipeline/exchange.ts). Not set on the response at arrival: a header set
 * before `writeHead(status, headers)` sends Node down its slow path, which
 * re-validates every upstream header one by one.
 * Same rule as nginx `$request_id` / Envoy `x-request-id` (Envoy keeps an
 * edge request's id only from trusted hops: `preserve_external_request_id`).
 */
import { randomUUID } from 'node:crypto';
import type { RequestContext } from '../accept/context.js';

export const REQUEST_ID_HEADER = 'x-request-id';

/** Visible ASCII without separators that would break a log line or a header; at most 200 characters. */
const SANE = /^[A-Za-z0-9._:@+=\/-]{1,200}$/;

/** Decides ctx.requestId. */
export function assignRequestId(ctx: RequestContext, peerTrusted: boolean): string {
  const given = ctx.req.headers[REQUEST_ID_HEADER];
  const id = peerTrusted && typeof given === 'string' && SANE.test(given) ? given : randomUUID();
  // randomUUID builds its string from ~20 concatenated pieces; reading a character makes V8
  // flatten it into one, so a request held for long (queued) keeps 36 bytes, not the whole tree.
  id.charCodeAt(0);
  ctx.requestId = id;
  return id;
}

/** The request id on a forwarded response's headers, unless the upstream answered with one. */
export function withRequestId(ctx: RequestContext, headers: Record<string, string | string[] | undefined>): void {
  if (ctx.requestId && headers[REQUEST_ID_HEADER] === undefined) headers[REQUEST_ID_HEADER] = ctx.requestId;
}

/** The request id on sluice's own answer (before it is written). */
export function setRequestIdHeader(ctx: RequestContext): void {
  const res = ctx.res as { setHeader?(name: string, value: string): unknown; headersSent?: boolean };
  // A WebSocket upgrade has a socket here, not a response: its id goes upstream only.
  if (ctx.requestId && typeof res.setHeader === 'function' && !res.headersSent) res.setHeader(REQUEST_ID_HEADER, ctx.requestId);
}
