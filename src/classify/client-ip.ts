/**
 * Which address is the client. The socket peer, unless the peer is a trusted
 * proxy, in which case X-Forwarded-For is walked right to left past trusted
 * hops (proxy-addr, as express does). Untrusted peers cannot spoof an address.
 */
import proxyaddr from 'proxy-addr';
import type { IncomingMessage } from 'node:http';
import { unmapIPv4, type InboundRequest } from '../accept/context.js';

export class ClientIp {
  private readonly trust: (addr: string, i: number) => boolean;
  private readonly any: boolean;

  constructor(trustedProxies: readonly string[]) {
    this.any = trustedProxies.length > 0;
    this.trust = proxyaddr.compile([...trustedProxies]);
  }

  of(req: InboundRequest, peer: string): string {
    if (!this.any || req.headers['x-forwarded-for'] === undefined || !this.trust(peer, 0)) return peer;
    const view = { headers: req.headers, connection: { remoteAddress: peer }, socket: { remoteAddress: peer } };
    return unmapIPv4(proxyaddr(view as unknown as IncomingMessage, this.trust));
  }

  peerTrusted(peer: string): boolean {
    return this.any && this.trust(peer, 0);
  }
}

