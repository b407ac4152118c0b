/**
 * Request body framing for the upstream hop. A request is forwarded with exactly the
 * body it was received with: the same length, or chunked when its length is unknown,
 * on every method. Never a length without its body (the upstream would read the next
 * request on the pooled connection as that body: request smuggling, RFC 9112 §11.2).
 *
 * Sources: RFC 9112 §6 (message body length: Transfer-Encoding, Content-Length),
 * RFC 9113 §8.1.1 (HTTP/2: content-length must equal the DATA payload, which Node's
 * nghttp2 enforces with a stream error before a request reaches sluice).
 */
import type { ClientRequest, OutgoingHttpHeaders } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { InboundRequest } from '../accept/context.js';

/** How the request body is delimited, decided once from what arrived. */
export type BodyFraming =
  /** No body: nothing is written upstream and no length header is sent. */
  | { readonly kind: 'none' }
  /** Exactly `length` bytes follow (Content-Length). */
  | { readonly kind: 'length'; readonly length: number }
  /** A body of unknown length (HTTP/1.1 chunked, or HTTP/2 DATA without content-length): forwarded chunked. */
  | { readonly kind: 'chunked' };

const NONE: BodyFraming = Object.freeze({ kind: 'none' });
const CHUNKED: BodyFraming = Object.freeze({ kind: 'chunked' });

/**
 * The framing of an inbound request. HTTP/1.1: Transfer-Encoding (Node's parser has
 * already refused it together with Content-Length, or with a final coding other than
 * chunked), else Content-Length, else no body. HTTP/2: END_STREAM on HEADERS means no body;
 * else content-length when given, else unknown length.
 */
export function framingOf(req: InboundRequest): BodyFraming {
  const cl = req.headers['content-length'];
  if (req.httpVersionMajor >= 2) {
    const stream = (req as Http2ServerRequest).stream as { endAfterHeaders?: boolean } | undefined;
    if (stream?.endAfterHeaders === true) return cl === '0' ? { kind: 'length', length: 0 } : NONE;
    return cl !== undefined ? lengthOf(cl) : CHUNKED;
  }
  if (req.headers['transfer-encoding'] !== undefined) return CHUNKED;
  return cl !== undefined ? lengthOf(cl) : NONE;
}

/**
 * What is wrong with a request's Transfer-Encoding, or undefined when there is none or it is
 * `chunked` alone. RFC 9112 §6.3: chunked not the final coding → 400 (the body length cannot be
 * determined). RFC 9112 §6.1: another coding before chunked (`gzip, chunked`, which Node's parser
 * accepts, removing only the chunking) → 501: forwarded, the body would reach the upstream still
 * gzip-coded but labelled as plain.
 */
export function transferCodingProblem(req: InboundRequest): { readonly status: 400 | 501; readonly value: string } | undefined {
  if (req.httpVersionMajor >= 2) return undefined; // HTTP/2 forbids Transfer-Encoding (nghttp2 refuses it)
  const te = req.headers['transfer-encoding'];
  if (te === undefined) return undefined;
  const codings = te.split(',').map((c) => c.trim().toLowerCase());
  if (codings.at(-1) !== 'chunked') return { status: 400, value: te };
  return codings.length === 1 ? undefined : { status: 501, value: te };
}

function lengthOf(cl: string): BodyFraming {
  const n = Number(cl);
  return { kind: 'length', length: n };
}

/**
 * Sets the upstream request's framing headers from the inbound framing, replacing whatever
 * came in (http2-proxy copies Content-Length and drops Transfer-Encoding). With an explicit
 * `transfer-encoding: chunked`, Node's client frames the body in chunks on every method
 * (by default it would not for GET, HEAD, DELETE, OPTIONS and would write raw bytes).
 */
export function applyFraming(headers: OutgoingHttpHeaders, framing: BodyFraming): void {
  delete headers['content-length'];
  delete headers['transfer-encoding'];
  if (framing.kind === 'length') headers['content-length'] = String(framing.length);
  else if (framing.kind === 'chunked') headers['transfer-encoding'] = 'chunked';
}

/** Methods whose request body http2-proxy discards (it resumes the request and ends the upstream one at once). */
const DISCARDED_BY_PROXY = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Guards the upstream request's body; call it after every other wrapper of `up.write`/`up.end`
 * (body limit, upload shaping) so it sees http2-proxy's calls first.
 *
 * - http2-proxy never streams the body of a GET, HEAD or OPTIONS request (on connect it calls
 *   `req.resume(); proxyReq.end()`). When such a request has a body, that bare `end()` is
 *   turned into streaming the body with backpressure, then ending.
 * - The upstream request is ended only when the inbound body is complete: as many bytes as
 *   its length said, and (HTTP/2) a stream that ended with END_STREAM rather than a reset.
 *   Node's HTTP/2 compatibility layer ends a reset request's body as if it were complete
 *   (`push(null)` on stream close), and Node's client does not check Content-Length; without
 *   this guard a truncated body would be sent as a complete one and the upstream would wait for
 *   (or, on a pooled connection, borrow) the missing bytes. An incomplete body destroys the
 *   upstream request instead.
 */
export function guardBody(req: InboundRequest, up: ClientRequest, framing: BodyFraming): void {
  if (framing.kind === 'none') return; // nothing to carry or count: the hot path of body-less requests stays as it was
  const write = up.write;
  const end = up.end as (this: ClientRequest, ...a: unknown[]) => ClientRequest;
  let seen = 0;
  let carrying = false;
  up.write = function (this: ClientRequest, chunk: unknown, ...rest: unknown[]): boolean {
    seen += typeof chunk === 'string' ? Buffer.byteLength(chunk) : (chunk as Uint8Array).length;
    return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
  } as ClientRequest['write'];
  const finish = (): void => {
    if (incomplete(req, framing, seen)) {
      up.destroy(Object.assign(new Error('request body incomplete'), { code: 'ECONNRESET' }));
      return;
    }
    end.call(up);
  };
  up.end = function (this: ClientRequest, ...args: unknown[]): ClientRequest {
    if (args.length > 0) return end.apply(this, args);
    if (!carrying && DISCARDED_BY_PROXY.has(req.method ?? 'GET') && !req.readableEnded) {
      carrying = true;
      carry(req, up, finish);
      return up;
    }
    finish();
    return up;
  } as ClientRequest['end'];
}

function carry(req: InboundRequest, up: ClientRequest, finish: () => void): void {
  const onData = (d: Buffer): void => {
    if (!up.write(d)) req.pause();
  };
  const onDrain = (): void => {
    req.resume();
  };
  const onEnd = (): void => {
    up.off('drain', onDrain);
    finish();
  };
  req.on('data', onData).once('end', onEnd);
  up.on('drain', onDrain);
  up.once('close', () => {
    req.off('data', onData).off('end', onEnd);
    up.off('drain', onDrain);
  });
}

function incomplete(req: InboundRequest, framing: BodyFraming, seen: number): boolean {
  if (framing.kind === 'length' && seen !== framing.length) return true;
  if (req.httpVersionMajor >= 2) {
    // Closed before END_STREAM: reset with an error code, or aborted (reset with NO_ERROR, or the session went away).
    const stream = (req as Http2ServerRequest).stream as { rstCode?: number; aborted?: boolean } | undefined;
    return (stream?.rstCode !== undefined && stream.rstCode !== 0) || stream?.aborted === true;
  }
  return (req as { complete?: boolean }).complete === false;
}
