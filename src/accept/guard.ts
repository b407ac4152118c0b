/**
 * The checks every listener (cleartext h1+h2c, TLS with ALPN) applies before a
 * request reaches the pipeline, wired in one place so both listeners and both
 * protocols answer alike. What is refused, and why, is decided in gate.ts
 * (header list size by RFC 9113 §6.5.2, authority by RFC 9112 §3.2 / RFC 9110
 * §7.2, transfer codings by RFC 9112 §6); here the refusal is answered:
 * - a request: problem+json, and an HTTP/1.1 connection is not reused (its
 *   framing or authority is in doubt);
 * - an `Upgrade` that is not a WebSocket handshake on GET is ignored and the
 *   request served as a plain one (accept/upgrade.ts); a WebSocket handshake
 *   that gate.ts refuses gets a raw problem+json and the socket is closed.
 */
import { STATUS_CODES, type IncomingMessage, type Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ProxyError } from '../errors.js';
import type { InboundRequest, InboundResponse } from './context.js';
import { sendProblem } from './problem.js';
import { isWebSocketUpgrade, serveWithoutUpgrade } from './upgrade.js';
import { refuseHandshake, refuseRequest } from './gate.js';

export interface GuardedHandlers {
  request(req: InboundRequest, res: InboundResponse): void;
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
}

/**
 * HTTP/1.1 `CONNECT` (RFC 9110 §9.3.6): sluice is a reverse proxy, not a tunnel;
 * answered 405 (Node would otherwise drop the connection without an answer).
 */
export function refuseConnect(_req: IncomingMessage, socket: Duplex): void {
  socket.on('error', noop);
  writeRawProblem(socket, new ProxyError('METHOD_NOT_ALLOWED', 'CONNECT is not supported: sluice is a reverse proxy, not a tunnel'));
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
      const refusal = refuseRequest(req, maxHeaderSize);
      if (refusal) {
        if (req.httpVersionMajor === 1) res.setHeader('connection', 'close');
        sendProblem(res, refusal);
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
      const refusal = refuseHandshake(req);
      if (refusal) {
        socket.on('error', noop);
        writeRawProblem(socket, refusal);
        return;
      }
      req.headers.upgrade = 'websocket'; // http2-proxy accepts only the lower-case token
      handlers.upgrade(req, socket, head);
    },
  };
}

function writeRawProblem(socket: Duplex, err: ProxyError): void {
  const body = JSON.stringify(err.toProblem());
  socket.end(
    `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? ''}\r\nContent-Type: application/problem+json\r\nCache-Control: no-store\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

function noop(): void {}
