/**
 * The compiled policy runtime code sees: units resolved, defaults applied,
 * references resolved to objects, everything frozen. Derived from the raw
 * schema types so a key added to the schema shows up here.
 */
import type { RawClassMatch, RawRouteMatch, RawRateLimit, RawPathNormalization, RawBalance } from './schema.js';
import type { OpsPolicy } from './ops.js';

export interface Target {
  readonly url: string;
  readonly hostname: string;
  readonly port: number;
  /** TLS client settings for an https:// target; undefined for http://. */
  readonly tls?: TlsClientPolicy;
  /** Load-balancing weight (1 unless given). */
  readonly weight: number;
}

/** How sluice speaks to an upstream's targets (upstreams[].protocol). */
export type UpstreamProtocol = 'http1' | 'h2' | 'h2c';

/** TLS to an https:// target: PEM contents, read when the policy loads. */
export interface TlsClientPolicy {
  readonly ca?: string;
  /** SNI name and the name checked against the certificate; '' for none (IP targets). */
  readonly servername: string;
  readonly cert?: string;
  readonly key?: string;
  /** false only with insecureSkipVerify: true. */
  readonly rejectUnauthorized: boolean;
}

/** One certificate of a TLS listener, with the SNI names it answers. */
export interface TlsCertificate {
  readonly certFile: string;
  readonly cert: string;
  readonly key: string;
  /** Lower-case names, "*.example.com" for one label; empty: only as the default. */
  readonly serverNames: readonly string[];
}

/** listen[].tls, files already read and checked (cert matches key). */
export interface TlsServerPolicy {
  /** The first is the default (no SNI, or no name matched). */
  readonly certificates: readonly TlsCertificate[];
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
  readonly clientCa?: string;
  readonly requireClientCert: boolean;
}

export interface ListenPolicy {
  readonly host: string;
  readonly port: number;
  readonly tls?: TlsServerPolicy;
}

/**
 * The Host sent upstream: the client's (default), the target's host:port, or a literal value.
 * Source: Envoy `host_rewrite_literal` / `auto_host_rewrite`, HAProxy `http-request set-header Host`.
 */
export type HostRewrite = { readonly kind: 'client' } | { readonly kind: 'target' } | { readonly kind: 'value'; readonly value: string };

export interface UpstreamPolicy {
  readonly name: string;
  /** Host sent upstream; `{ kind: 'client' }` unless `hostRewrite` is configured. */
  readonly hostRewrite: HostRewrite;
  readonly targets: readonly Target[];
  /** http1 (default), h2 (TLS + ALPN) or h2c (prior knowledge). */
  readonly protocol: UpstreamProtocol;
  /**
   * The hard cap: never more in flight. Infinity when not configured; with
   * `maxConcurrent: auto` it is `adaptive.max` and the live limit is lower.
   */
  readonly maxConcurrent: number;
  /** Present with `maxConcurrent: auto` or an `adaptive` block. */
  readonly adaptive?: AdaptivePolicy;
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

/** Knobs of the adaptive limit (src/schedule/limit/gradient.ts), units resolved. */
export interface AdaptivePolicy {
  readonly min: number;
  readonly max: number;
  readonly initial: number;
  /** Latency ratio over the min RTT still taken as no queueing (Envoy's minRTT buffer + 1). */
  readonly tolerance: number;
  /** Weight of a newly computed limit, 0..1. */
  readonly smoothing: number;
  readonly windowMs: number;
  readonly probeIntervalMs: number;
}

/** Standing-queue control of one class's queue. */
export interface QueuePolicy {
  readonly size: number;
  readonly timeoutMs: number;
  /** CoDel-style shedding; absent: off. */
  readonly codel?: { readonly targetMs: number; readonly intervalMs: number };
  /** Serve newest first while the queue stands. */
  readonly lifo: 'off' | 'adaptive';
  /** What "standing" means for lifo and codel: codel's values, or 5 ms / 100 ms. */
  readonly standing: { readonly targetMs: number; readonly intervalMs: number };
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
  /** key: ip: leading bits of an IPv6 address that make the key (1-128). */
  readonly ipv6Prefix: number;
}

/** Request path normalisation (see src/accept/target.ts). */
export interface PathNormalizationPolicy {
  readonly mergeSlashes: boolean;
  readonly escapedSlashes: NonNullable<RawPathNormalization['escapedSlashes']>;
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
  readonly queue: QueuePolicy;
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

/** OpsPolicy: log, errors, serverTiming, adminRequireToken (src/policy/ops.ts). */
/** cluster: caps shared by every instance through leases (src/cluster/). */
export interface ClusterPolicy {
  readonly redis: string;
  /** Undefined: HOSTNAME-PID. */
  readonly instance?: string;
  readonly leaseTtlMs: number;
  readonly renewIntervalMs: number;
}

export interface Policy extends OpsPolicy {
  /** File the policy was read from (for messages and reload). */
  readonly source: string;
  readonly listen: { readonly host: string; readonly port: number };
  /** Every listener; the first is `listen` (the one --port overrides). */
  readonly listeners: readonly ListenPolicy[];
  readonly admin: { readonly host: string; readonly port: number; readonly token?: string };
  /** Lower-case header names removed from requests of untrusted peers. */
  readonly trustedHeaders: readonly string[];
  /** CIDRs (validated) of proxies whose X-Forwarded-For is believed. */
  readonly trustedProxies: readonly string[];
  readonly identity?: { readonly jwt: JwtIdentityPolicy };
  readonly pathNormalization: PathNormalizationPolicy;
  readonly telemetry: { readonly legacyMetricNames: boolean };
  /** Absolute paths of every file the policy refers to (secretFile, jwksFile, tokenFile, ...); --watch watches them. */
  readonly files: readonly string[];
  readonly cluster?: ClusterPolicy;
  readonly limits: {
    readonly maxConcurrent: number;
    readonly maxQueued: number;
    readonly maxHeaderSize: number;
    readonly maxBodySize: number;
    readonly maxUrlLength: number;
    readonly http2MaxConcurrentStreams: number;
    /** Bytes; 0 turns a buffer off. */
    readonly buffering: { readonly request: number; readonly response: number; readonly budget: number };
  };
  readonly shutdown: { readonly graceMs: number };
  readonly timeouts: {
    readonly requestHeadersMs: number;
    readonly requestBodyIdleMs: number;
    readonly keepAliveMs: number;
    /** Deadline of a whole request body, from the request head. */
    readonly requestBodyMs: number;
    /** Bytes per second; 0: no minimum. */
    readonly minBodyRate: number;
    readonly minBodyRateWindowMs: number;
  };
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
