/**
 * Noticing that a client is gone, for every request it has pending, whatever
 * stage the request is in.
 *
 * - HTTP/1.1: the socket. Node queues the responses of pipelined requests and
 *   attaches each to the socket only when the previous one is done, so a
 *   response not yet writing never emits 'close'; the socket's 'close' is the
 *   one event every pending request of a connection can rely on. One listener
 *   per socket, however many requests are pipelined on it.
 * - HTTP/2: the stream. A stream reset right after its HEADERS may already be
 *   closed when the handler runs; `watch` says so at once.
 * - WebSocket: the upgraded socket.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Http2ServerRequest } from 'node:http2';
import type { InboundRequest } from '../accept/context.js';

export interface Watcher {
  /** Called at most once, when the client's connection or stream closes. */
  clientGone(): void;
}

const kWatchers = Symbol('sluice.watchers');
type Watched = Duplex & { [kWatchers]?: Set<Watcher> };

function onSocketClose(this: Watched): void {
  const set = this[kWatchers];
  this[kWatchers] = undefined;
  if (set) for (const w of set) w.clientGone();
}

/** What closes when this request's client is gone. */
export function closerOf(req: InboundRequest): Duplex | undefined {
  if (req.httpVersionMajor === 2) return (req as Http2ServerRequest).stream;
  return req.socket as Socket | undefined;
}

/**
 * Registers w to hear when `closer` closes. Returns false, registering nothing,
 * when it is closed already.
 */
export function watch(closer: Duplex | undefined, w: Watcher): boolean {
  if (!closer || closer.destroyed || (closer as { closed?: boolean }).closed) return false;
  const c = closer as Watched;
  let set = c[kWatchers];
  if (!set) {
    set = c[kWatchers] = new Set();
    c.once('close', onSocketClose);
  }
  set.add(w);
  return true;
}

export function unwatch(closer: Duplex | undefined, w: Watcher): void {
  const c = closer as Watched | undefined;
  // The set and its one listener stay with the socket (keep-alive: the next request reuses them).
  c?.[kWatchers]?.delete(w);
}
