/**
 * Per-request state carried through the pipeline. A plain class with fields
 * (no closures) so that the hot path allocates one object per request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { ClassPolicy, RoutePolicy } from '../policy/types.js';
import type { RequestTrace } from '../telemetry/tracing.js';
import { normalizeTarget, DEFAULT_PATH_NORMALIZATION, type PathNormalization } from './target.js';

export type InboundRequest = IncomingMessage | Http2ServerRequest;
export type InboundResponse = ServerResponse | Http2ServerResponse;

/** How a request ended; also the `sluice.outcome` span attribute and metric label. */
export type Outcome =
  | 'forwarded'
  | 'rate_limited'
  | 'shed'
  | 'queue_full'
  | 'queue_timeout'
  | 'upstream_error'
  | 'upstream_timeout'
  | 'client_abort'
  | 'no_route'
  | 'rejected';

let nextId = 1;

/** Peer addresses of an HTTP/2 session, hung on the session by the listener (see Replay in server.ts). */
export const kPeer = Symbol('sluice.peer');
export interface Peer {
  remoteAddress: string;
  localAddress: string;
  localPort: number;
}

/** Address of the TCP peer, for HTTP/1.1 and HTTP/2 alike. */
export function peerOf(req: InboundRequest): string {
  const stream = (req as Http2ServerRequest).stream as { session?: { [kPeer]?: Peer } } | undefined;
  const p = stream?.session?.[kPeer];
  return unmapIPv4(p ? p.remoteAddress : (req.socket?.remoteAddress ?? ''));
}

/** "::ffff:10.1.2.3" → "10.1.2.3": a dual-stack socket reports IPv4 peers as mapped IPv6. */
export function unmapIPv4(a: string): string {
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

export class RequestContext {
  readonly id = nextId++;
  /** performance.now() at arrival. */
  readonly start: number;
  readonly method: string;
  /** Normalised path without the query string (see target.ts); the upstream receives this path. */
  readonly path: string;
  /** Why the request target was refused (answer 400), or undefined. */
  readonly targetError: string | undefined;
  /** Host without port, lower case. */
  readonly host: string;
  route: RoutePolicy | undefined;
  klass: ClassPolicy | undefined;
  /** TCP peer address (a proxy in front of sluice, or the client). */
  readonly peer: string;
  /** Client address after trustedProxies are applied. */
  clientIp = '';
  /** Decided by classification; shown by explain. */
  rule = '';
  queuedAt = 0;
  dequeuedAt = 0;
  upstreamStart = 0;
  upstreamHeadersAt = 0;
  outcome: Outcome | undefined;
  status = 0;
  /** Request body limit for this request: the smaller of its route's and its class's. */
  maxBodySize = Infinity;
  /** Claims of a verified JWT, when identity is configured and the token checks out. */
  claims: Record<string, unknown> | undefined;
  /** Spans of this request; undefined while (or when) tracing does not need them. */
  trace: RequestTrace | undefined = undefined;
  /** X-Request-Id: a trusted peer's, or generated (src/forward/request-id.ts). */
  requestId = '';
  /** Upstream target URL of the last forwarding attempt ('' when not forwarded). */
  target = '';
  /** Request body bytes sent upstream; response body bytes sent to the client (access log). */
  bytesIn = 0;
  bytesOut = 0;

  constructor(
    readonly req: InboundRequest,
    readonly res: InboundResponse,
    now: number,
    norm: PathNormalization = DEFAULT_PATH_NORMALIZATION,
  ) {
    this.start = now;
    this.method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const t = normalizeTarget(url, norm);
    if (t.ok) {
      this.path = t.path;
      this.targetError = undefined;
      // What is forwarded is what was classified (http2-proxy sends req.url).
      if (t.path.length + t.query.length !== url.length || !url.startsWith(t.path)) req.url = t.path + t.query;
    } else {
      const q = url.indexOf('?');
      this.path = q === -1 ? url : url.slice(0, q);
      this.targetError = t.reason;
    }
    this.host = hostOf(req);
    this.peer = peerOf(req);
  }

  get queueMs(): number {
    return this.dequeuedAt > 0 ? this.dequeuedAt - this.queuedAt : 0;
  }

  get upstreamMs(): number {
    return this.upstreamHeadersAt > 0 ? this.upstreamHeadersAt - this.upstreamStart : 0;
  }
}

/** :authority (HTTP/2) or Host (HTTP/1.1), without port, lower case. */
export function hostOf(req: InboundRequest): string {
  const h = (req.headers[':authority'] as string | undefined) ?? req.headers.host ?? '';
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return h.slice(0, end + 1).toLowerCase();
  }
  const colon = h.indexOf(':');
  return (colon === -1 ? h : h.slice(0, colon)).toLowerCase();
}
