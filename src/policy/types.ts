/**
 * The compiled policy runtime code sees: units resolved, defaults applied,
 * references resolved to objects, everything frozen. Derived from the raw
 * schema types so a key added to the schema shows up here.
 */
import type { RawClassMatch, RawRouteMatch, RawRateLimit, RawBalance } from './schema.js';

export interface Target {
  readonly url: string;
  readonly hostname: string;
  readonly port: number;
  /** Load-balancing weight (1 unless given). */
  readonly weight: number;
}

export interface UpstreamPolicy {
  readonly name: string;
  readonly targets: readonly Target[];
  /** Infinity when not configured. */
  readonly maxConcurrent: number;
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  /** Longest pause in the response body before the exchange is aborted. */
  readonly idleTimeoutMs: number;
  readonly keepAlive: { readonly maxSockets: number; readonly maxFreeSockets: number; readonly idleTimeoutMs: number };
  readonly outlier: {
    readonly consecutiveFailures: number;
    readonly baseEjectionMs: number;
    readonly maxEjectionMs: number;
    readonly maxEjectionPercent: number;
  };
  /** How a target is chosen (default roundRobin). */
  readonly balance: BalanceKind;
  /** Key of balance: hash (default ip). */
  readonly hashOn: HashKey;
  readonly sticky?: StickyPolicy;
  readonly healthCheck?: HealthCheckPolicy;
}

export interface RoutePolicy {
  readonly name: string;
  readonly index: number;
  readonly match: Readonly<RawRouteMatch>;
  readonly upstream: UpstreamPolicy;
  /** Body limit on this route, already capped by limits.maxBodySize (Infinity: none). */
  readonly maxBodySize: number;
  readonly rewrite?: RewritePolicy;
  readonly requestHeaders?: RequestHeaderRules;
  readonly responseHeaders?: ResponseHeaderRules;
  readonly access?: AccessPolicy;
}

export interface RateLimitPolicy {
  readonly rate: number;
  readonly perMs: number;
  readonly burst: number;
  readonly key: NonNullable<RawRateLimit['key']>;
  readonly onLimit: NonNullable<RawRateLimit['onLimit']>;
  readonly store?: { readonly redis: string; readonly failClosed: boolean };
}

export interface BandwidthPolicy {
  /** Bytes per second; undefined means unshaped. */
  readonly download?: number;
  readonly upload?: number;
  readonly perRequest: { readonly download?: number; readonly upload?: number };
  readonly burst?: number;
}

export interface ClassPolicy {
  readonly name: string;
  readonly index: number;
  readonly priority: number;
  readonly weight: number;
  readonly match: Readonly<RawClassMatch> | undefined;
  /** Infinity when not configured. */
  readonly concurrency: number;
  readonly reserve: number;
  /** Body limit of the class (Infinity: none; the route's applies too). */
  readonly maxBodySize: number;
  readonly queue: { readonly size: number; readonly timeoutMs: number };
  readonly rateLimit?: RateLimitPolicy;
  readonly bandwidth?: BandwidthPolicy;
  readonly access?: AccessPolicy;
}

export interface JwtIdentityPolicy {
  readonly header: string;
  readonly cookie?: string;
  /** HMAC secret bytes, when HMAC is used. */
  readonly secret?: Uint8Array;
  /** Parsed JWKS, when public keys are used. */
  readonly jwks?: { keys: unknown[] };
  readonly issuer?: string;
  readonly audience?: string;
  readonly algorithms?: readonly string[];
}

export interface Policy {
  /** File the policy was read from (for messages and reload). */
  readonly source: string;
  readonly listen: { readonly host: string; readonly port: number };
  readonly admin: { readonly host: string; readonly port: number; readonly token?: string };
  /** Lower-case header names removed from requests of untrusted peers. */
  readonly trustedHeaders: readonly string[];
  /** CIDRs (validated) of proxies whose X-Forwarded-For is believed. */
  readonly trustedProxies: readonly string[];
  readonly identity?: { readonly jwt: JwtIdentityPolicy };
  readonly limits: {
    readonly maxConcurrent: number;
    readonly maxQueued: number;
    readonly maxHeaderSize: number;
    readonly maxBodySize: number;
    readonly maxUrlLength: number;
    readonly http2MaxConcurrentStreams: number;
  };
  readonly shutdown: { readonly graceMs: number };
  readonly timeouts: { readonly requestHeadersMs: number; readonly requestBodyIdleMs: number; readonly keepAliveMs: number };
  readonly upstreams: ReadonlyMap<string, UpstreamPolicy>;
  readonly routes: readonly RoutePolicy[];
  readonly classes: readonly ClassPolicy[];
  readonly defaultClass: ClassPolicy;
}

// ── Gateway essentials (issue 14) ──

export type BalanceKind = RawBalance;

/** What `balance: hash` hashes (Envoy hash_policy: header, cookie, connection source IP, path). */
export type HashKey =
  | { readonly kind: 'ip' }
  | { readonly kind: 'path' }
  | { readonly kind: 'header'; readonly name: string }
  | { readonly kind: 'cookie'; readonly name: string };

/** Sticky sessions: a cookie sluice sets, or the application's own session cookie. */
export type StickyPolicy =
  | {
      readonly kind: 'cookie';
      readonly name: string;
      /** Max-Age in seconds; undefined: a session cookie. */
      readonly maxAgeSec?: number;
      readonly secure: boolean;
      readonly httpOnly: boolean;
      readonly sameSite: 'Strict' | 'Lax' | 'None';
    }
  | { readonly kind: 'app'; readonly name: string };

export interface HealthCheckPolicy {
  readonly path: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly healthyThreshold: number;
  readonly unhealthyThreshold: number;
  /** Inclusive status ranges that pass. */
  readonly expect: readonly (readonly [number, number])[];
}

/** Path rewrite of a route; the query string is kept as it came. */
export type RewritePolicy =
  | { readonly kind: 'strip'; readonly prefix: string }
  | { readonly kind: 'replace'; readonly from: string; readonly to: string }
  | { readonly kind: 'regex'; readonly regex: RegExp; readonly replace: string };

/** Header names are lower case. */
export interface RequestHeaderRules {
  readonly set: readonly (readonly [string, string])[];
  readonly add: readonly (readonly [string, string])[];
  readonly remove: readonly string[];
}

export interface ResponseHeaderRules {
  readonly set: readonly (readonly [string, string])[];
  readonly remove: readonly string[];
}

/** Access control of a route or class (CIDRs validated at load). */
export interface AccessPolicy {
  readonly allow: readonly string[];
  readonly deny: readonly string[];
  readonly requireIdentity: boolean;
  /** Upper-case methods allowed; undefined: all. */
  readonly methods?: readonly string[];
}
