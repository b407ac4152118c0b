/** Writes sluice's own answers as RFC 9457 problem+json, over HTTP/1.1 or HTTP/2. */
import type { ProxyError } from '../errors.js';
import type { InboundResponse } from './context.js';

export function sendProblem(res: InboundResponse, err: ProxyError): void {
  if (res.headersSent || res.destroyed || res.writableEnded) {
    // Too late for a status: tear the stream down so the client sees a failure, not a truncated success.
    if (!res.writableEnded) res.destroy();
    return;
  }
  const body = JSON.stringify(err.toProblem());
  const headers: Record<string, string | number> = {
    'content-type': 'application/problem+json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  };
  const retry = err.retryAfterSeconds();
  if (retry !== undefined) headers['retry-after'] = retry;
  if (err.headers) Object.assign(headers, err.headers);
  (res as { writeHead(s: number, h: Record<string, string | number>): unknown }).writeHead(err.status, headers);
  res.end(body);
}
