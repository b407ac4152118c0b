/**
 * `Upgrade` by the RFCs. sluice proxies one upgrade, WebSocket (RFC 6455 §4.1: a GET whose
 * Upgrade field lists the token `websocket`, compared case-insensitively). Any other upgrade
 * (`h2c`, as `curl --http2 http://…` asks for with HTTP2-Settings; anything on a non-GET) is
 * ignored, which RFC 9110 §7.8 allows: the request is served as a plain HTTP/1.1 request.
 *
 * Node's HTTP/1.1 server hands every request with `Connection: upgrade` to the 'upgrade'
 * listener and detaches the socket from its parser. An ignored upgrade is given back to the
 * server: its head is rebuilt without Upgrade, HTTP2-Settings and the matching Connection
 * tokens, put back in front of the unread bytes (`head` and the socket), and the socket is
 * handed to the server again, which parses it as a fresh keep-alive connection.
 */
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';

/** Whether this upgrade request is a WebSocket handshake sluice forwards. */
export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  if (req.method !== 'GET') return false;
  const up = req.headers.upgrade;
  if (up === undefined) return false;
  for (const t of up.split(',')) if (t.trim().toLowerCase() === 'websocket') return true;
  return false;
}

/** Whether a WebSocket handshake carries a body (it must not, RFC 6455 §4.1; it would be forwarded as a length without its body). */
export function handshakeHasBody(req: IncomingMessage): boolean {
  const cl = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0');
}

const DROPPED = new Set(['upgrade', 'http2-settings']);

/** The request head as received, minus the upgrade it asked for. */
export function headWithoutUpgrade(req: IncomingMessage): string {
  let out = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (DROPPED.has(lower)) continue;
    let value = raw[i + 1]!;
    if (lower === 'connection') {
      value = value
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t !== '' && !DROPPED.has(t.toLowerCase()))
        .join(', ');
      if (value === '') continue;
    }
    out += `${name}: ${value}\r\n`;
  }
  return `${out}\r\n`;
}

/** Serves an upgrade request that is not taken as a plain request on the same connection. */
export function serveWithoutUpgrade(server: HttpServer, req: IncomingMessage, socket: Socket, head: Buffer): void {
  const replay = (): void => {
    if (socket.destroyed) return;
    if (head.length > 0) socket.unshift(head);
    socket.unshift(Buffer.from(headWithoutUpgrade(req), 'latin1'));
    server.emit('connection', socket);
    socket.resume();
  };
  // A pipelined earlier response may still be writing; its bytes must go out first.
  const prior = (socket as Socket & { _httpMessage?: { writableFinished: boolean; once(e: 'finish' | 'close', f: () => void): void } })._httpMessage;
  if (prior && !prior.writableFinished) {
    let done = false;
    const once = (): void => {
      if (!done) {
        done = true;
        replay();
      }
    };
    prior.once('finish', once);
    prior.once('close', once);
  } else replay();
}
