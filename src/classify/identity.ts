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
    return r.verified ? r.claims : undefined;
  }

  /**
   * Like verify, with the reason a token was not accepted (for `sluice explain` and 401 answers):
   * no token, not a JWT, expired, bad signature, no matching key, a failed claim
   * (iss, aud, nbf) or an algorithm not allowed. Reasons come from jose's error codes.
   */
  async check(req: InboundRequest): Promise<{ verified: true; claims: Record<string, unknown> } | { verified: false; reason: string }> {
    const token = this.token(req);
    if (!token) {
      return { verified: false, reason: `no token (header ${this.p.header}: Bearer <jwt>${this.p.cookie ? `, or cookie ${this.p.cookie}` : ''})` };
    }
    try {
      const opts = {
        ...(this.p.issuer !== undefined ? { issuer: this.p.issuer } : {}),
        ...(this.p.audience !== undefined ? { audience: this.p.audience } : {}),
        ...(this.p.algorithms !== undefined ? { algorithms: [...this.p.algorithms] } : {}),
      };
      const { payload } = await (this.key instanceof Uint8Array
        ? jwtVerify(token, this.key, opts)
        : jwtVerify(token, this.key, opts));
      return { verified: true, claims: payload as Record<string, unknown> };
    } catch (err) {
      return { verified: false, reason: rejection(err) };
    }
  }
}

function rejection(err: unknown): string {
  const e = err as Error & { code?: string; claim?: string; reason?: string; payload?: { exp?: number } };
  switch (e.code) {
    case 'ERR_JWT_EXPIRED':
      return `expired${typeof e.payload?.exp === 'number' ? ` at ${new Date(e.payload.exp * 1000).toISOString()}` : ''}`;
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'bad signature (not signed with the configured secret or key)';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return `claim '${e.claim ?? '?'}' rejected: ${e.message}`;
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return `algorithm not allowed: ${e.message}`;
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return 'no key in the JWKS matches the token (kid/alg)';
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return `not a JWT: ${e.message}`;
    default:
      return `rejected: ${e.message}`;
  }
}
