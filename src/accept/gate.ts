/**
 * The edge checks a request passes before any stage sees it, as decisions: undefined (pass)
 * or the ProxyError to answer. Order: header list size (HTTP/2; HTTP/1.1's is Node's parser),
 * authority (accept/host.ts, which also rewrites absolute-form targets), transfer coding
 * (forward/framing.ts). WebSocket handshakes get the authority check and must carry no body.
 */
import type { IncomingMessage } from 'node:http';
import { ProxyError } from '../errors.js';
import type { InboundRequest } from './context.js';
import { checkAuthority } from './host.js';
import { headerListSize } from './header-list.js';
import { handshakeHasBody } from './upgrade.js';
import { transferCodingProblem } from '../forward/framing.js';

/** Why a request is refused at the edge, or undefined. `maxHeaderSize` in bytes (limits.maxHeaderSize). */
export function refuseRequest(req: InboundRequest, maxHeaderSize: number): ProxyError | undefined {
  if (req.httpVersionMajor >= 2) {
    const size = headerListSize(req.rawHeaders);
    if (size > maxHeaderSize) return new ProxyError('HEADERS_TOO_LARGE', `header list of ${size} bytes (RFC 9113 §6.5.2) exceeds ${maxHeaderSize}`);
  }
  const host = checkAuthority(req);
  if (host.kind === 'reject') return new ProxyError('BAD_REQUEST', host.detail);
  const te = transferCodingProblem(req);
  if (te !== undefined) {
    const detail = `Transfer-Encoding ${JSON.stringify(te.value)}: only chunked alone is forwarded`;
    return new ProxyError(te.status === 400 ? 'BAD_REQUEST' : 'TRANSFER_CODING_NOT_IMPLEMENTED', detail);
  }
  return undefined;
}

/** Why a WebSocket handshake is refused at the edge (always a 400), or undefined. */
export function refuseHandshake(req: IncomingMessage): ProxyError | undefined {
  const host = checkAuthority(req);
  if (host.kind === 'reject') return new ProxyError('BAD_REQUEST', host.detail);
  if (handshakeHasBody(req)) return new ProxyError('BAD_REQUEST', 'a WebSocket handshake must not carry a body (RFC 6455 §4.1)');
  return undefined;
}
