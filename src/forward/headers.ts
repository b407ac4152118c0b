/**
 * Header rules for the request sent upstream. http2-proxy already removes the
 * hop-by-hop headers (Connection and what it names, Keep-Alive, TE, Upgrade,
 * Proxy-*, Transfer-Encoding, HTTP2-Settings) and adds `Forwarded`; this adds
 * the X-Forwarded-* headers most backends read.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import type { RequestContext } from '../accept/context.js';

export function addForwardedHeaders(headers: OutgoingHttpHeaders, ctx: RequestContext, peerTrusted: boolean): void {
  const peer = ctx.peer;
  const host = (ctx.req.headers[':authority'] as string | undefined) ?? ctx.req.headers.host ?? '';
  // Only a trusted proxy's chain is kept; anyone else could forge it to look like another client.
  const priorXff = ctx.req.headers['x-forwarded-for'];
  headers['x-forwarded-for'] = peerTrusted && typeof priorXff === 'string' && priorXff !== '' ? `${priorXff}, ${peer}` : peer;
  if (!(peerTrusted && headers['x-forwarded-proto'])) headers['x-forwarded-proto'] = 'http';
  if (!(peerTrusted && headers['x-forwarded-host']) && host) headers['x-forwarded-host'] = host;
  // RFC 7239. http2-proxy writes one too, but from socket fields an HTTP/2 session does not expose.
  const node = peer.includes(':') ? `"[${peer}]"` : peer;
  const own = `for=${node};proto=http${host ? `;host="${host.replace(/"/g, '')}"` : ''}`;
  const priorFwd = ctx.req.headers.forwarded;
  headers.forwarded = peerTrusted && typeof priorFwd === 'string' && priorFwd !== '' ? `${priorFwd}, ${own}` : own;
  // Decided on arrival (request-id.ts): replaces whatever an untrusted client sent.
  if (ctx.requestId) headers['x-request-id'] = ctx.requestId;
}
