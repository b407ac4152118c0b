/**
 * X-Request-Id: taken from a trusted peer (trustedProxies) when it is a sane
 * token, otherwise generated; set on the response at once (so sluice's own
 * answers carry it too) and forwarded upstream (forward/headers.ts).
 * Same rule as nginx `$request_id` / Envoy `x-request-id` (Envoy keeps an
 * edge request's id only from trusted hops: `preserve_external_request_id`).
 */
import { randomUUID } from 'node:crypto';
import type { RequestContext } from '../accept/context.js';

export const REQUEST_ID_HEADER = 'x-request-id';

/** Visible ASCII without separators that would break a log line or a header; at most 200 characters. */
const SANE = /^[A-Za-z0-9._:@+=\/-]{1,200}$/;

/** Decides ctx.requestId and sets it on the response. */
export function assignRequestId(ctx: RequestContext, peerTrusted: boolean): string {
  const given = ctx.req.headers[REQUEST_ID_HEADER];
  const id = peerTrusted && typeof given === 'string' && SANE.test(given) ? given : randomUUID();
  ctx.requestId = id;
  const res = ctx.res as { setHeader?(name: string, value: string): unknown; headersSent?: boolean };
  // A WebSocket upgrade has a socket here, not a response: its id goes upstream only.
  if (typeof res.setHeader === 'function' && !res.headersSent) res.setHeader(REQUEST_ID_HEADER, id);
  return id;
}
