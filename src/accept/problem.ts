/** Writes sluice's own answers as RFC 9457 problem+json, over HTTP/1.1 or HTTP/2. */
import type { ProxyError } from '../errors.js';
import type { InboundRequest, InboundResponse } from './context.js';
import { isGrpc, sendGrpcStatus } from './grpc.js';

export function sendProblem(res: InboundResponse, err: ProxyError): void {
  if (res.headersSent || res.destroyed || res.writableEnded) {
    // Too late for a status: tear the stream down so the client sees a failure, not a truncated success.
    // With an error, so an HTTP/2 stream is reset with INTERNAL_ERROR: RST_STREAM(NO_ERROR) reads as a clean end to some clients.
    if (!res.writableEnded) res.destroy(new Error(err.message));
    return;
  }
  // A gRPC client cannot read problem+json: it gets a grpc-status instead.
  if (isGrpc((res as { req?: InboundRequest }).req)) return sendGrpcStatus(res, err);
  const body = JSON.stringify(err.toProblem());
  const headers: Record<string, string | number> = {
    'content-type': 'application/problem+json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  };
  const retry = err.retryAfterSeconds();
  if (retry !== undefined) headers['retry-after'] = retry;
  if (err.headers) Object.assign(headers, err.headers);
  // An HTTP/1.1 answer sent before the request body was read: the rest of the body is
  // still on the wire, so the connection cannot be reused for another request.
  const req = (res as { req?: { complete?: boolean; httpVersionMajor?: number } }).req;
  if (req && req.httpVersionMajor === 1 && req.complete === false) headers.connection = 'close';
  (res as { writeHead(s: number, h: Record<string, string | number>): unknown }).writeHead(err.status, headers);
  res.end(body);
}
