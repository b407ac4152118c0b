/**
 * The compiled policy runtime code sees: units resolved, defaults applied,
 * references resolved to objects, everything frozen. Derived from the raw
 * schema types so a key added to the schema shows up here.
 */
import type { RawClassMatch, RawRouteMatch, RawRateLimit } from './schema.js';

export interface Target {
  readonly url: string;
  readonly hostname: string;
  readonly port: number;
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
}

export interface RoutePolicy {
  readonly name: string;
  readonly index: number;
  readonly match: Readonly<RawRouteMatch>;
  readonly upstream: UpstreamPolicy;
  /** Body limit on this route, already capped by limits.maxBodySize (Infinity: none). */
  readonly maxBodySize: number;
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

/** cluster: caps shared by every instance through leases (src/cluster/). */
export interface ClusterPolicy {
  readonly redis: string;
  /** Undefined: HOSTNAME-PID. */
  readonly instance?: string;
  readonly leaseTtlMs: number;
  readonly renewIntervalMs: number;
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
  readonly cluster?: ClusterPolicy;
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
