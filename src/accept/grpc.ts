/**
 * gRPC answers. A gRPC client reads only `grpc-status` and `grpc-message`, so
 * when sluice refuses a gRPC request itself it answers as a gRPC server would:
 * HTTP 200, `content-type: application/grpc`, and the status in a Trailers-Only
 * response (one HEADERS frame with END_STREAM; gRPC over HTTP/2, "Responses").
 * Status choice follows the gRPC status code guide (doc/statuscodes.md):
 * RESOURCE_EXHAUSTED for rate limits and size limits, UNAVAILABLE for
 * overload (queue full, shed) and unreachable upstreams (clients may retry),
 * DEADLINE_EXCEEDED for timeouts, UNIMPLEMENTED for no route (as the gRPC
 * HTTP-to-gRPC mapping does for 404), and that mapping for other statuses.
 */
import type { ErrorCode, ProxyError } from '../errors.js';
import type { InboundRequest, InboundResponse } from './context.js';

/** gRPC status codes used here (grpc/doc/statuscodes.md). */
export const GrpcStatus = {
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

const BY_CODE: Partial<Record<ErrorCode, number>> = {
  RATE_LIMITED: GrpcStatus.RESOURCE_EXHAUSTED,
  BODY_TOO_LARGE: GrpcStatus.RESOURCE_EXHAUSTED,
  HEADERS_TOO_LARGE: GrpcStatus.RESOURCE_EXHAUSTED,
  QUEUE_FULL: GrpcStatus.UNAVAILABLE,
  SHED: GrpcStatus.UNAVAILABLE,
  SHUTTING_DOWN: GrpcStatus.UNAVAILABLE,
  UPSTREAM_UNREACHABLE: GrpcStatus.UNAVAILABLE,
  UPSTREAM_RESET: GrpcStatus.UNAVAILABLE,
  UPSTREAM_TLS: GrpcStatus.UNAVAILABLE,
  QUEUE_TIMEOUT: GrpcStatus.DEADLINE_EXCEEDED,
  UPSTREAM_TIMEOUT: GrpcStatus.DEADLINE_EXCEEDED,
  REQUEST_TIMEOUT: GrpcStatus.DEADLINE_EXCEEDED,
  NO_ROUTE: GrpcStatus.UNIMPLEMENTED,
  URI_TOO_LONG: GrpcStatus.INVALID_ARGUMENT,
  BAD_REQUEST: GrpcStatus.INTERNAL,
};

/** gRPC status for one of sluice's own answers: by error code, else by HTTP status (gRPC's HTTP mapping). */
export function grpcStatusOf(err: Pick<ProxyError, 'code' | 'status'>): number {
  const byCode = BY_CODE[err.code];
  if (byCode !== undefined) return byCode;
  switch (err.status) {
    case 400:
      return GrpcStatus.INTERNAL;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 429:
      return GrpcStatus.RESOURCE_EXHAUSTED;
    case 502:
    case 503:
      return GrpcStatus.UNAVAILABLE;
    case 504:
      return GrpcStatus.DEADLINE_EXCEEDED;
    default:
      return GrpcStatus.UNKNOWN;
  }
}

/** content-type application/grpc, application/grpc+proto, application/grpc-web… */
export function isGrpc(req: InboundRequest | undefined): boolean {
  const ct = req?.headers['content-type'];
  return typeof ct === 'string' && ct.startsWith('application/grpc');
}

/** grpc-message is percent-encoded: printable ASCII except '%' stays, everything else as %XX of its UTF-8 bytes. */
export function encodeGrpcMessage(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * Answers a gRPC request with the status of one of sluice's refusals, as a
 * Trailers-Only response. A Retry-After becomes `grpc-retry-pushback-ms`
 * (gRPC retry design A6), which grpc clients with retry policies honour.
 */
export function sendGrpcStatus(res: InboundResponse, err: ProxyError): void {
  const r = res as InboundResponse & { setHeader(n: string, v: string): unknown; statusCode: number };
  r.statusCode = 200;
  r.setHeader('content-type', 'application/grpc');
  r.setHeader('grpc-status', String(grpcStatusOf(err)));
  r.setHeader('grpc-message', encodeGrpcMessage(`${err.message} (sluice ${err.code.toLowerCase().replace(/_/g, '-')}, HTTP ${err.status})`));
  if (err.retryAfterMs !== undefined) r.setHeader('grpc-retry-pushback-ms', String(Math.ceil(err.retryAfterMs)));
  if (err.headers) for (const [k, v] of Object.entries(err.headers)) r.setHeader(k, v);
  // end() before any header is sent: Node's HTTP/2 response then sends one HEADERS frame with END_STREAM.
  res.end();
}

/**
 * A gRPC upstream's Trailers-Only answer (grpc-status in the headers) relayed to
 * an HTTP/2 client: sluice writes headers first and the body after, so the
 * status moves to the trailers, where gRPC clients read it. Removes the fields
 * from `headers` and returns them; undefined when nothing is to move.
 */
export function grpcStatusToTrailers(headers: Record<string, string | string[] | undefined>, res: InboundResponse): Record<string, string> | undefined {
  if (headers['grpc-status'] === undefined || !('stream' in res)) return undefined;
  const ct = headers['content-type'];
  if (typeof ct !== 'string' || !ct.startsWith('application/grpc')) return undefined;
  const out: Record<string, string> = {};
  for (const k of ['grpc-status', 'grpc-message', 'grpc-status-details-bin']) {
    const v = headers[k];
    if (typeof v === 'string') out[k] = v;
    delete headers[k];
  }
  return out;
}
