/**
 * The checks every listener (cleartext h1+h2c, TLS with ALPN) applies before a
 * request reaches the pipeline, in one place so both protocols and both
 * listeners answer alike:
 * - HTTP/2 header lists are measured as RFC 9113 §6.5.2 counts them and refused
 *   with 431 past `limits.maxHeaderSize` (Node enforces it for HTTP/1.1 only);
 * - the authority (Host / `:authority`, absolute-form) is checked by RFC 9112 §3.2
 *   and RFC 9110 §7.2 (accept/host.ts): 400 otherwise;
 * - an `Upgrade` that is not a WebSocket handshake on GET is ignored and the
 *   request served as a plain one (accept/upgrade.ts); a WebSocket handshake with
 *   a bad Host or a body is refused with 400 and never forwarded.
 */
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ProxyError } from '../errors.js';
import type { InboundRequest, InboundResponse } from './context.js';
import { sendProblem } from './problem.js';
import { checkAuthority } from './host.js';
import { handshakeHasBody, isWebSocketUpgrade, serveWithoutUpgrade } from './upgrade.js';
import { headerListSize } from './header-list.js';

export interface GuardedHandlers {
  request(req: InboundRequest, res: InboundResponse): void;
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
}

/**
 * Wraps the pipeline's handlers with the checks above. `plainServer` is the
 * HTTP/1.1 server a non-WebSocket upgrade is replayed into; `onHead` is called
 * when a request head is complete (the cleartext listener's head deadline).
 */
export function guardHandlers(
  handlers: GuardedHandlers,
  maxHeaderSize: number,
  plainServer: HttpServer,
  onHead: (socket: unknown) => void = noop,
): GuardedHandlers {
  return {
    request(req, res) {
      if (req.httpVersionMajor === 1) onHead(req.socket);
      else {
        const size = headerListSize(req.rawHeaders);
        if (size > maxHeaderSize) {
          sendProblem(res, new ProxyError('HEADERS_TOO_LARGE', `header list of ${size} bytes (RFC 9113 §6.5.2) exceeds ${maxHeaderSize}`));
          return;
        }
      }
      const host = checkAuthority(req);
      if (host.kind === 'reject') {
        if (req.httpVersionMajor === 1) res.setHeader('connection', 'close');
        sendProblem(res, new ProxyError('BAD_REQUEST', host.detail));
        return;
      }
      handlers.request(req, res);
    },
    upgrade(req, socket, head) {
      onHead(socket);
      if (!isWebSocketUpgrade(req)) {
        // Not a WebSocket handshake (h2c, or an upgrade on another method): served as a plain request.
        serveWithoutUpgrade(plainServer, req, socket as Socket, head);
        return;
      }
      const host = checkAuthority(req);
      const refusal = host.kind === 'reject' ? host.detail : handshakeHasBody(req) ? 'a WebSocket handshake must not carry a body' : undefined;
      if (refusal !== undefined) {
        socket.on('error', noop);
        writeRaw400(socket, refusal);
        return;
      }
      req.headers.upgrade = 'websocket';
      handlers.upgrade(req, socket, head);
    },
  };
}

function writeRaw400(socket: Duplex, detail: string): void {
  const body = JSON.stringify(new ProxyError('BAD_REQUEST', detail).toProblem());
  socket.end(
    'HTTP/1.1 400 Bad Request\r\nContent-Type: application/problem+json\r\nCache-Control: no-store\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

function noop(): void {}
