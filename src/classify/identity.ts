/**
 * Verified identity: a JWT from a header (Bearer) or cookie, checked with jose
 * against an HMAC secret or a JWKS. Only verified claims can promote a request;
 * a token that fails verification is treated as absent.
 */
import { jwtVerify, createLocalJWKSet, type JWTVerifyGetKey, type JSONWebKeySet } from 'jose';
import { parse as parseCookie } from 'cookie';
import type { JwtIdentityPolicy } from '../policy/types.js';
import type { InboundRequest } from '../accept/context.js';

export class IdentityVerifier {
  private readonly key: Uint8Array | JWTVerifyGetKey;

  constructor(private readonly p: JwtIdentityPolicy) {
    if (p.secret) this.key = p.secret;
    else if (p.jwks) this.key = createLocalJWKSet(p.jwks as unknown as JSONWebKeySet);
    else throw new Error('identity.jwt needs a secret or a JWKS');
  }

  token(req: InboundRequest): string | undefined {
    const h = req.headers[this.p.header];
    const v = Array.isArray(h) ? h[0] : h;
    if (v) {
      const m = /^Bearer\s+(\S+)$/i.exec(v);
      if (m) return m[1];
    }
    if (this.p.cookie && req.headers.cookie) return parseCookie(req.headers.cookie)[this.p.cookie];
    return undefined;
  }

  /** Claims of a valid token, or undefined (missing, malformed, expired, wrong key). */
  async verify(req: InboundRequest): Promise<Record<string, unknown> | undefined> {
    const r = await this.check(req);
    return r.ok ? r.claims : undefined;
  }

  /** Claims of a valid token, or why there are none (for 401 answers): missing, or jose's reason. */
  async check(req: InboundRequest): Promise<{ ok: true; claims: Record<string, unknown> } | { ok: false; reason: string }> {
    const token = this.token(req);
    if (!token) return { ok: false, reason: 'no token presented' };
    try {
      const opts = {
        ...(this.p.issuer !== undefined ? { issuer: this.p.issuer } : {}),
        ...(this.p.audience !== undefined ? { audience: this.p.audience } : {}),
        ...(this.p.algorithms !== undefined ? { algorithms: [...this.p.algorithms] } : {}),
      };
      const { payload } = await (this.key instanceof Uint8Array
        ? jwtVerify(token, this.key, opts)
        : jwtVerify(token, this.key, opts));
      return { ok: true, claims: payload as Record<string, unknown> };
    } catch (err) {
      return { ok: false, reason: `invalid token: ${(err as Error).message}` };
    }
  }
}
