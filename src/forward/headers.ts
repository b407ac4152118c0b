/**
 * Header rules for the request sent upstream. http2-proxy already removes the
 * hop-by-hop headers (Connection and what it names, Keep-Alive, TE, Upgrade,
 * Proxy-*, Transfer-Encoding, HTTP2-Settings), drops Host and adds `Forwarded`; this
 * sets Host and the X-Forwarded-* headers most backends read.
 *
 * Host (as Envoy, HAProxy, Caddy and node-http-proxy do by default): the client's
 * authority (:authority on HTTP/2, Host on HTTP/1.1, the target's authority for an
 * absolute-form request; all checked by accept/host.ts) is sent unchanged.
 * `upstreams[].hostRewrite: target` sends the target's host:port instead (Node's client
 * default), and any other value is sent literally.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import type { RequestContext } from '../accept/context.js';
import type { HostRewrite } from '../policy/types.js';

/** The Host header value to send upstream; undefined means the target's host:port. */
export function upstreamHost(authority: string | undefined, rewrite: HostRewrite | undefined): string | undefined {
  if (rewrite === undefined || rewrite.kind === 'client') return authority === '' ? undefined : authority;
  return rewrite.kind === 'value' ? rewrite.value : undefined;
}
import { isEncrypted } from '../accept/tls.js';

export function addForwardedHeaders(headers: OutgoingHttpHeaders, ctx: RequestContext, peerTrusted: boolean): void {
  const peer = ctx.peer;
  const host = (ctx.req.headers[':authority'] as string | undefined) ?? ctx.req.headers.host ?? '';
  const sendHost = upstreamHost(host, ctx.route?.upstream.hostRewrite);
  if (sendHost !== undefined) headers.host = sendHost;
  else delete headers.host;
  // Only a trusted proxy's chain is kept; anyone else could forge it to look like another client.
  const priorXff = ctx.req.headers['x-forwarded-for'];
  headers['x-forwarded-for'] = peerTrusted && typeof priorXff === 'string' && priorXff !== '' ? `${priorXff}, ${peer}` : peer;
  const proto = isEncrypted(ctx.req) ? 'https' : 'http';
  if (!(peerTrusted && headers['x-forwarded-proto'])) headers['x-forwarded-proto'] = proto;
  if (!(peerTrusted && headers['x-forwarded-host'])) {
    if (host) headers['x-forwarded-host'] = host;
    else delete headers['x-forwarded-host'];
  }
  // RFC 7239. http2-proxy writes one too, but from socket fields an HTTP/2 session does not expose.
  const node = peer.includes(':') ? `"[${peer}]"` : peer;
  const own = `for=${node};proto=${proto}${host ? `;host="${host.replace(/"/g, '')}"` : ''}`;
  const priorFwd = ctx.req.headers.forwarded;
  headers.forwarded = peerTrusted && typeof priorFwd === 'string' && priorFwd !== '' ? `${priorFwd}, ${own}` : own;
  // Decided on arrival (request-id.ts): replaces whatever an untrusted client sent.
  if (ctx.requestId) headers['x-request-id'] = ctx.requestId;
}
