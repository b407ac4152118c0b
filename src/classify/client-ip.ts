/**
 * Which address is the client. The socket peer, unless the peer is a trusted
 * proxy, in which case X-Forwarded-For is walked right to left past trusted
 * hops (proxy-addr, as express does). Untrusted peers cannot spoof an address.
 */
import proxyaddr from 'proxy-addr';
import type { IncomingMessage } from 'node:http';
import { unmapIPv4, type InboundRequest } from '../accept/context.js';
import { canonicalIp } from '../admit/keys.js';

export class ClientIp {
  private readonly trust: (addr: string, i: number) => boolean;
  private readonly any: boolean;

  constructor(trustedProxies: readonly string[]) {
    this.any = trustedProxies.length > 0;
    this.trust = proxyaddr.compile([...trustedProxies]);
  }

  of(req: InboundRequest, peer: string): string {
    const xff = req.headers['x-forwarded-for'];
    if (!this.any || xff === undefined || !this.trust(peer, 0)) return peer;
    const view = { headers: { 'x-forwarded-for': stripPorts(xff) }, connection: { remoteAddress: peer }, socket: { remoteAddress: peer } };
    return canonicalIp(unmapIPv4(proxyaddr(view as unknown as IncomingMessage, this.trust)));
  }

  peerTrusted(peer: string): boolean {
    return this.any && this.trust(peer, 0);
  }
}

/**
 * X-Forwarded-For entries with a port, as some front doors write them
 * (Azure: `203.0.113.7:51234`, `[2001:db8::7]:443`), reduced to the address,
 * so that neither classification nor rate-limit keys see the port (issue 16.3).
 * A bare IPv6 address (several colons, no brackets) is left alone.
 */
export function stripPorts(xff: string | string[]): string {
  const list = Array.isArray(xff) ? xff.join(',') : xff;
  if (!list.includes(':') && !list.includes('[')) return list;
  return list
    .split(',')
    .map((e) => {
      const v = e.trim();
      if (v.startsWith('[')) {
        const end = v.indexOf(']');
        return end === -1 ? v : v.slice(1, end);
      }
      const colon = v.indexOf(':');
      return colon !== -1 && colon === v.lastIndexOf(':') ? v.slice(0, colon) : v;
    })
    .join(', ');
}
