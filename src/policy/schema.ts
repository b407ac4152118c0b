/**
 * The one schema of a policy file. Types (`RawPolicy`), runtime validation (ajv)
 * and the published policies/policy.schema.json all derive from it.
 *
 * Every object rejects unknown keys: a typo must be an error, never a silent default.
 */
import { Type, type Static, type TObject, type TProperties, type ObjectOptions } from '@sinclair/typebox';
import { LogSchema, ErrorsSchema, ServerTimingSchema, RequireTokenSchema } from './ops.js';

const Strict = <T extends TProperties>(props: T, opts: ObjectOptions = {}): TObject<T> =>
  Type.Object(props, { additionalProperties: false, ...opts });

export const DURATION_RE = '^\\s*\\d+(\\.\\d+)?\\s*(ms|s|m|h)\\s*$';
export const SIZE_RE = '^\\s*\\d+(\\.\\d+)?\\s*([kKMGT]i?)?[bB]?\\s*$';
export const RATE_RE = '^\\s*\\d+(\\.\\d+)?\\s*([kKMGT]i?)?[bB]?\\s*/\\s*s\\s*$';

const Duration = (description: string, def?: string) =>
  Type.String({ pattern: DURATION_RE, description: `${description} A duration such as 250ms, 5s, 1m.`, ...(def ? { default: def } : {}) });
const Size = (description: string) =>
  Type.Union([Type.String({ pattern: SIZE_RE }), Type.Integer({ minimum: 0 })], {
    description: `${description} A size such as 64KiB, 1MiB, 500kB, or a byte count.`,
    errorMessage: 'a size such as 64KiB, 1MiB or 500kB',
  });
const Rate = (description: string) =>
  Type.String({ pattern: RATE_RE, description: `${description} A byte rate such as 1MiB/s or 500kB/s.` });
const Name = (description: string) => Type.String({ minLength: 1, pattern: '^[A-Za-z0-9_.-]+$', description });
const Port = (description: string) => Type.Integer({ minimum: 0, maximum: 65535, description });
const StringOrList = (description: string) =>
  Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1 })], {
    description,
    errorMessage: 'a string or a list of strings',
  });

/** A header/cookie/query value matcher: exact, one of a list, regex, or mere presence. */
const ValueMatcher = Type.Union(
  [
    Type.String(),
    Type.Array(Type.String(), { minItems: 1 }),
    Strict({ regex: Type.String({ description: 'ECMAScript regular expression the value must match.' }) }),
    Strict({ present: Type.Boolean({ description: 'true: the value must be present; false: absent.' }) }),
  ],
  {
    description: 'Exact value, list of accepted values, { regex: "..." } or { present: true|false }.',
    errorMessage: 'a string, a list of strings, { regex: ... } or { present: true|false }',
  },
);
const ValueMap = (what: string) =>
  Type.Record(Type.String({ minLength: 1 }), ValueMatcher, { description: `${what} name to matcher; all must hold.` });

const TlsVersion = Type.Union([Type.Literal('TLSv1.2'), Type.Literal('TLSv1.3')], {
  description: 'TLSv1.2 or TLSv1.3.',
  errorMessage: 'TLSv1.2 or TLSv1.3',
});

export const ListenTls = Strict(
  {
    cert: Type.Optional(Type.String({ description: 'PEM certificate (chain) file, relative to the policy file. Give cert + key, or certificates.' })),
    key: Type.Optional(Type.String({ description: 'PEM private key file of cert.' })),
    certificates: Type.Optional(Type.Array(
      Strict({
        cert: Type.String({ description: 'PEM certificate (chain) file.' }),
        key: Type.String({ description: 'PEM private key file.' }),
        serverNames: Type.Optional(Type.Array(Type.String({ minLength: 1 }), {
          minItems: 1,
          description: 'SNI names this certificate answers; "*.example.com" matches one label. Default: the names in the certificate.',
        })),
      }),
      { minItems: 1, description: 'Several certificates chosen by SNI; the first is the default for unknown names and clients without SNI.' },
    )),
    minVersion: Type.Optional({ ...TlsVersion, description: 'Oldest TLS version accepted. Default TLSv1.2.' }),
    clientCa: Type.Optional(Type.String({ description: 'PEM CA bundle that client certificates are verified against (mTLS). Default: no client certificates asked.' })),
    requireClientCert: Type.Optional(Type.Boolean({ description: 'true: handshakes without a certificate verified by clientCa fail. Default false (a certificate is asked for and, when valid, usable by match.clientCert).' })),
  },
  { description: 'TLS on this listener, with ALPN h2 and http/1.1 on the one port. Files are re-read on reload.' },
);

export const Listen = Strict(
  {
    host: Type.Optional(Type.String({ default: '127.0.0.1', description: 'Address to bind. Default 127.0.0.1.' })),
    port: Type.Optional(Port('Port to bind; 0 picks an ephemeral port. Default 8080.')),
    tls: Type.Optional(ListenTls),
  },
  { description: 'Proxy listener: HTTP/1.1 and HTTP/2 cleartext (prior knowledge) on one port; with tls, HTTPS with ALPN h2 and http/1.1.' },
);

export const UpstreamTls = Strict(
  {
    ca: Type.Optional(Type.String({ description: 'PEM CA bundle the upstream certificate is verified against. Default: the system roots.' })),
    servername: Type.Optional(Type.String({ description: 'SNI name sent and checked against the certificate. Default: the target host name (none for an IP address, which is then checked against IP SANs).' })),
    cert: Type.Optional(Type.String({ description: 'PEM client certificate file sluice presents (mTLS to the upstream).' })),
    key: Type.Optional(Type.String({ description: 'PEM private key of cert.' })),
    insecureSkipVerify: Type.Optional(Type.Boolean({ description: 'true: accept any upstream certificate (testing only). Default false.' })),
  },
  { description: 'TLS to https:// targets. Verification is on by default.' },
);

export const Admin = Strict(
  {
    host: Type.Optional(Type.String({ description: 'Admin bind address. Default 127.0.0.1 (loopback only).' })),
    port: Type.Optional(Port('Admin port; 0 picks an ephemeral port. Default 9901.')),
    token: Type.Optional(Type.String({ minLength: 16, description: 'POST /reload requires "Authorization: Bearer <token>". Default: no token (loopback only is the protection).' })),
    tokenFile: Type.Optional(Type.String({ description: 'File holding the reload token.' })),
    requireToken: Type.Optional(RequireTokenSchema),
  },
  { description: 'Admin listener (health, status, metrics, reload).' },
);

// ── Gateway essentials (issue 14): balancing, stickiness, active health, rewrites, access ──

const TargetUrl = Type.String({ pattern: '^https?://[^/\\s]+/?$', description: 'http://HOST:PORT or https://HOST:PORT' });

/** A target with a load-balancing weight (Envoy `load_balancing_weight`). */
export const WeightedTarget = Strict(
  {
    url: TargetUrl,
    weight: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'Share of requests relative to the other targets (roundRobin, random, hash). Default 1.' })),
  },
  { description: 'A target with a weight.' },
);

export const Balance = Type.Union(
  [Type.Literal('roundRobin'), Type.Literal('leastRequest'), Type.Literal('random'), Type.Literal('hash')],
  {
    description:
      'How a target is chosen: roundRobin (weighted, smooth), leastRequest (power of two choices on requests in flight), random (weighted), hash (ring hash on hashOn). Default roundRobin.',
    errorMessage: 'roundRobin, leastRequest, random or hash',
  },
);

export const HashOn = Type.String({
  pattern: '^(ip|path|header:[A-Za-z0-9-]+|cookie:[^=;,\\s]+)$',
  description: 'Key of balance: hash: ip | path | header:NAME | cookie:NAME. A request without the key is balanced round-robin. Default ip.',
});

const CookieName = (description: string) => Type.String({ minLength: 1, pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", description });

export const Sticky = Type.Union(
  [
    Strict(
      {
        cookie: CookieName('Name of the cookie sluice sets; its value names the target opaquely (keyed hash).'),
        ttl: Type.Optional(Duration('Max-Age of the cookie. Default: a session cookie.')),
        secure: Type.Optional(Type.Boolean({ description: 'Secure attribute. Default false.' })),
        httpOnly: Type.Optional(Type.Boolean({ description: 'HttpOnly attribute. Default true.' })),
        sameSite: Type.Optional(Type.Union([Type.Literal('Strict'), Type.Literal('Lax'), Type.Literal('None')], {
          description: 'SameSite attribute: Strict | Lax | None. Default Lax.',
          errorMessage: 'Strict, Lax or None',
        })),
      },
      { description: 'sluice sets a cookie naming the target.' },
    ),
    Strict(
      { appCookie: CookieName("The application's own session cookie (e.g. JSESSIONID); sluice learns value → target from its Set-Cookie.") },
      { description: "Stick to the application's session cookie." },
    ),
  ],
  {
    description: 'Sticky sessions: requests of one session go to the same target while it is healthy.',
    errorMessage: '{ cookie: NAME, ttl?, secure?, httpOnly?, sameSite? } or { appCookie: NAME }',
  },
);

export const HealthCheck = Strict(
  {
    path: Type.String({ pattern: '^/', description: 'Path requested with GET on each target.' }),
    interval: Type.Optional(Duration('Time between checks of a target. Default 5s.')),
    timeout: Type.Optional(Duration('No answer by then: the check failed. Default 1s.')),
    healthyThreshold: Type.Optional(Type.Integer({ minimum: 1, description: 'Passes in a row that bring an unhealthy target back. Default 2.' })),
    unhealthyThreshold: Type.Optional(Type.Integer({ minimum: 1, description: 'Failures in a row that take a target out. Default 3.' })),
    expectStatus: Type.Optional(
      Type.Union(
        [
          Type.Integer({ minimum: 100, maximum: 599 }),
          Type.Array(Type.Integer({ minimum: 100, maximum: 599 }), { minItems: 1 }),
          Type.String({ pattern: '^([1-5]xx|[1-5][0-9][0-9]-[1-5][0-9][0-9])$' }),
        ],
        {
          description: 'Statuses that pass: a status, a list, "2xx" or a range "200-399". Default 2xx.',
          errorMessage: 'a status, a list of statuses, "2xx" or a range such as "200-399"',
        },
      ),
    ),
  },
  { description: 'Active health checks, next to the passive outlier detection; never counted against maxConcurrent or rate limits.' },
);

export const Rewrite = Type.Union(
  [
    Strict({ stripPrefix: Type.String({ pattern: '^/', description: 'Removed from the start of the path.' }) }),
    Strict({
      replacePrefix: Strict({
        from: Type.String({ pattern: '^/', description: 'Prefix to replace.' }),
        to: Type.String({ pattern: '^/', description: 'Replacement.' }),
      }),
    }),
    Strict({
      regex: Type.String({ description: 'ECMAScript regular expression on the path (without the query).' }),
      replace: Type.String({ description: 'Replacement; $1, $<name> refer to groups.' }),
    }),
  ],
  {
    description: 'Path sent upstream: { stripPrefix } | { replacePrefix: { from, to } } | { regex, replace }. The query string is kept.',
    errorMessage: '{ stripPrefix: /p }, { replacePrefix: { from, to } } or { regex, replace }',
  },
);

const HeaderName = Type.String({ pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~-]+$' });
const HeaderValues = (description: string) =>
  Type.Record(Type.String({ minLength: 1 }), Type.String(), { description });

export const RequestHeaders = Strict(
  {
    set: Type.Optional(HeaderValues('Headers set (replacing any) on the request sent upstream.')),
    add: Type.Optional(HeaderValues('Headers appended to the request sent upstream.')),
    remove: Type.Optional(Type.Array(HeaderName, { description: 'Headers removed from the request sent upstream.' })),
  },
  { description: 'Header rules for the request sent upstream (after the X-Forwarded-* headers).' },
);

export const ResponseHeaders = Strict(
  {
    set: Type.Optional(HeaderValues('Headers set (replacing any) on the response to the client.')),
    remove: Type.Optional(Type.Array(HeaderName, { description: 'Headers removed from the response to the client.' })),
  },
  { description: 'Header rules for the upstream response sent to the client.' },
);

export const Access = Strict(
  {
    allow: Type.Optional(Type.Array(Type.String(), { description: 'CIDRs or addresses allowed; others get 403. Default: everyone.' })),
    deny: Type.Optional(Type.Array(Type.String(), { description: 'CIDRs or addresses refused with 403 (checked before allow).' })),
    requireIdentity: Type.Optional(Type.Boolean({ description: 'A valid JWT (identity.jwt) is required: 401 with WWW-Authenticate: Bearer otherwise. Default false.' })),
    methods: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Za-z]+$' }), { minItems: 1, description: 'Methods allowed; others get 405 with Allow. Default: all.' })),
  },
  { description: 'Access control, decided before the request takes a queue slot or a rate-limit token.' },
);

/** Adaptive concurrency limit of an upstream (maxConcurrent: auto); see src/schedule/limit/gradient.ts. */
export const Adaptive = Strict(
  {
    min: Type.Optional(Type.Integer({ minimum: 1, description: 'Lowest limit, also the concurrency of min-RTT probes. Default 3 (more when class reserves need it).' })),
    max: Type.Optional(Type.Integer({ minimum: 1, description: 'Highest limit. Default 1000.' })),
    initial: Type.Optional(Type.Integer({ minimum: 1, description: 'Limit after the first min-RTT probe. Default 20.' })),
    tolerance: Type.Optional(Type.Number({ minimum: 1, maximum: 10, description: 'Latency over the no-load latency (min RTT) that still counts as no queueing: 1.25 = 25% more. Default 1.25.' })),
    smoothing: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1, description: 'Weight of each new limit against the previous one. Default 0.5.' })),
    window: Type.Optional(Duration('Samples are summarised (median) and the limit recomputed once per window. Default 100ms.')),
    probeInterval: Type.Optional(Duration('How often the no-load latency is measured again by holding concurrency at min for a few samples (±10% jitter). Default 15s.')),
  },
  { description: 'Tunes maxConcurrent: auto (gradient algorithm after Envoy adaptive concurrency and Netflix Gradient2). Implies auto.' },
);

export const Upstream = Strict({
  name: Name('Unique upstream name, referenced by routes.'),
  targets: Type.Array(Type.Union([TargetUrl, WeightedTarget], { errorMessage: 'http://HOST:PORT, https://HOST:PORT or { url, weight }' }), {
    minItems: 1,
    description: 'One or more http://HOST:PORT or https://HOST:PORT targets (all of one scheme), or { url, weight }, chosen by balance.',
  }),
  protocol: Type.Optional(Type.Union([Type.Literal('http1'), Type.Literal('h2'), Type.Literal('h2c')], {
    description: 'http1: HTTP/1.1 keep-alive pool (default); h2: HTTP/2 over TLS (ALPN, https:// targets); h2c: HTTP/2 prior knowledge (http:// targets). HTTP/2 uses one multiplexed session per target.',
    errorMessage: 'http1, h2 or h2c',
  })),
  tls: Type.Optional(UpstreamTls),
  maxConcurrent: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Literal('auto')], {
    description:
      'Never more requests in flight to this upstream (all targets together), or auto: a limit found from latency (see adaptive). Default: unlimited.',
    errorMessage: 'a positive integer or auto',
  })),
  adaptive: Type.Optional(Adaptive),
  timeout: Type.Optional(Duration('No response headers by then: 504. Default 30s.', '30s')),
  connectTimeout: Type.Optional(Duration('TCP connect timeout to a target: 502 after it. Default 5s.', '5s')),
  outlierDetection: Type.Optional(
    Strict(
      {
        consecutiveFailures: Type.Optional(
          Type.Integer({ minimum: 1, description: 'Failures in a row (refused, reset, timeout, 502/503/504) that eject a target. Default 5.' }),
        ),
        baseEjectionTime: Type.Optional(Duration('First ejection lasts this long; each further ejection of the same target adds as much. Default 10s.')),
        maxEjectionTime: Type.Optional(Duration('Longest ejection. Default 5m.')),
        maxEjectionPercent: Type.Optional(
          Type.Integer({ minimum: 0, maximum: 100, description: 'Never eject more than this share of the targets. Default 50.' }),
        ),
      },
      { description: 'Passive health: targets that keep failing leave the rotation for a back-off period.' },
    ),
  ),
  idleTimeout: Type.Optional(Duration('Response body stalls (no bytes from the upstream) this long: the exchange is aborted. Default 60s.')),
  hostRewrite: Type.Optional(Type.String({
    minLength: 1,
    description: 'Host header sent upstream: "target" sends the target\'s host:port; any other value (a host[:port]) is sent as is. Default: the client\'s Host (or :authority) unchanged.',
  })),
  keepAlive: Type.Optional(Strict(
    {
      maxSockets: Type.Optional(Type.Integer({ minimum: 1, description: 'Max sockets per target. Default 256.' })),
      maxFreeSockets: Type.Optional(Type.Integer({ minimum: 0, description: 'Idle sockets kept per target for requests sent through node:http (Expect; https targets by IP without SNI name). Default 64.' })),
      idleTimeout: Type.Optional(Duration('Idle pooled sockets are closed after this. Default 30s.')),
    },
    { description: 'Keep-alive connection pool to each target.' },
  )),
  balance: Type.Optional(Balance),
  hashOn: Type.Optional(HashOn),
  sticky: Type.Optional(Sticky),
  healthCheck: Type.Optional(HealthCheck),
});

export const RouteMatch = Strict(
  {
    pathPrefix: Type.Optional(Type.String({ pattern: '^/', description: 'Path must start with this.' })),
    host: Type.Optional(StringOrList('Host (without port), or a list; "*.example.com" matches subdomains.')),
    methods: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Za-z]+$' }), { minItems: 1, description: 'Accepted methods.' })),
    headers: Type.Optional(ValueMap('Header')),
  },
  { description: 'All given conditions must hold. Empty matches everything.' },
);

export const Route = Strict({
  name: Type.Optional(Name('Name shown by explain, logs and traces. Default route-N.')),
  match: Type.Optional(RouteMatch),
  upstream: Name('Name of the upstream to forward to.'),
  maxBodySize: Type.Optional(Size('Request body bytes on this route; more: 413. Default: limits.maxBodySize.')),
  rewrite: Type.Optional(Rewrite),
  requestHeaders: Type.Optional(RequestHeaders),
  responseHeaders: Type.Optional(ResponseHeaders),
  access: Type.Optional(Access),
});

export const ClassMatch = Strict(
  {
    methods: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Za-z]+$' }), { minItems: 1, description: 'Accepted methods.' })),
    pathPrefix: Type.Optional(Type.String({ pattern: '^/', description: 'Path must start with this.' })),
    path: Type.Optional(Type.String({ description: 'Glob on the path: * matches within a segment, ** across segments.' })),
    pathRegex: Type.Optional(Type.String({ description: 'ECMAScript regular expression on the path (without the query).' })),
    host: Type.Optional(StringOrList('Host (without port), or a list; "*.example.com" matches subdomains.')),
    headers: Type.Optional(ValueMap('Header')),
    cookies: Type.Optional(ValueMap('Cookie')),
    query: Type.Optional(ValueMap('Query parameter')),
    clientIp: Type.Optional(Type.Array(Type.String(), {
      minItems: 1,
      description: 'CIDRs or addresses (IPv4/IPv6) of the client, as decided by trustedProxies.',
    })),
    jwtClaims: Type.Optional(ValueMap('Claim of the verified JWT (see identity)')),
    clientCert: Type.Optional(Strict(
      {
        present: Type.Optional(Type.Boolean({ description: 'true: any client certificate verified by listen.tls.clientCa; false: none.' })),
        subject: Type.Optional({ ...ValueMatcher, description: 'Subject DN of the verified certificate, as "CN=partner,O=Example" (RFC 4514 order as sent).' }),
        cn: Type.Optional({ ...ValueMatcher, description: 'Subject common name of the verified certificate.' }),
        san: Type.Optional({ ...ValueMatcher, description: 'Any subjectAltName entry of the verified certificate, without its type prefix (a DNS name, URI, e-mail or IP).' }),
      },
      { description: 'The client certificate verified by listen.tls.clientCa (mTLS). An unverified certificate matches nothing.' },
    )),
  },
  { description: 'All given conditions must hold.' },
);

export const RateLimit = Strict({
  rate: Type.Number({ exclusiveMinimum: 0, description: 'Requests allowed per `per`.' }),
  per: Type.Optional(Duration('Refill period. Default 1s.')),
  burst: Type.Optional(Type.Integer({ minimum: 1, description: 'Bucket size: requests admitted at once. Default: rate.' })),
  key: Type.Optional(Type.String({
    pattern: '^(ip|class|header:[A-Za-z0-9-]+|cookie:[^=;,\\s]+|jwt:[A-Za-z0-9_.-]+)$',
    description: 'ip | class | header:NAME | cookie:NAME | jwt:CLAIM. Default ip.',
  })),
  onLimit: Type.Optional(Type.Union([Type.Literal('reject'), Type.Literal('queue')], {
    description: 'reject: 429 at once (default); queue: delay up to the queue timeout.',
    errorMessage: 'reject or queue',
  })),
  store: Type.Optional(Strict({ redis: Type.String({ pattern: '^rediss?://' }), failClosed: Type.Optional(Type.Boolean()) }, {
    description: 'Share the limit between instances through Redis.',
  })),
  ipv6Prefix: Type.Optional(Type.Integer({
    minimum: 1,
    maximum: 128,
    description: 'key: ip: IPv6 clients sharing this many leading bits share a bucket (a host rotating addresses inside its /64 gets one bucket). Default 64.',
  })),
});

export const Bandwidth = Strict({
  download: Type.Optional(Rate('Response bytes per second, shared by all requests of the class.')),
  upload: Type.Optional(Rate('Request body bytes per second, shared by all requests of the class.')),
  perRequest: Type.Optional(
    Strict({ download: Type.Optional(Rate('Per-request cap.')), upload: Type.Optional(Rate('Per-request cap.')) }),
  ),
  burst: Type.Optional(Size('Bucket size. Default: 1/10 s of the rate, at least 16KiB.')),
});

export const Klass = Strict({
  name: Name('Unique class name.'),
  priority: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000, description: 'Lower is served first. Default 0.' })),
  weight: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: 'Share among classes of equal priority. Default 1.' })),
  match: Type.Optional(ClassMatch),
  concurrency: Type.Optional(Type.Integer({ minimum: 1, description: 'Max in flight for this class. Default: unlimited.' })),
  reserve: Type.Optional(Type.Integer({
    minimum: 0,
    description: "Slots of each upstream's maxConcurrent held for this class alone. Default 0.",
  })),
  queue: Type.Optional(Strict({
    size: Type.Optional(Type.Integer({ minimum: 0, description: 'Max queued requests. Default 1000.' })),
    timeout: Type.Optional(Duration('Waiting longer than this: 503. Default 5s.')),
    codel: Type.Optional(Strict({
      target: Type.Optional(Duration('Acceptable standing queue delay. Default 5ms.')),
      interval: Type.Optional(Duration('How long the oldest wait must stay above target before shedding. Default 100ms.')),
    }, { description: 'Standing-queue control (CoDel): when the oldest waiter has waited longer than target for a whole interval, waiters older than target are shed with 503. Default off.' })),
    lifo: Type.Optional(Type.Union([Type.Literal('off'), Type.Literal('adaptive')], {
      description: 'adaptive: while the queue is standing (as codel defines it), serve the newest waiter first. Default off.',
      errorMessage: 'off or adaptive',
    })),
  }, { description: 'Bounded wait for a slot; full: 503 at once.' })),
  maxBodySize: Type.Optional(Size('Request body bytes for this class; more: 413. Default: the route\'s limit.')),
  rateLimit: Type.Optional(RateLimit),
  bandwidth: Type.Optional(Bandwidth),
  access: Type.Optional(Access),
});

export const Identity = Strict(
  {
    jwt: Type.Optional(Strict({
      header: Type.Optional(Type.String({ description: 'Header carrying "Bearer <token>". Default authorization.' })),
      cookie: Type.Optional(Type.String({ description: 'Cookie carrying the token, tried after the header.' })),
      secret: Type.Optional(Type.String({ minLength: 1, description: 'HMAC secret (HS256/384/512).' })),
      secretFile: Type.Optional(Type.String({ description: 'File holding the HMAC secret.' })),
      jwksFile: Type.Optional(Type.String({ description: 'File holding a JWKS (public keys) for RS/ES/EdDSA tokens.' })),
      issuer: Type.Optional(Type.String({ description: 'Required `iss` claim. Default: not checked.' })),
      audience: Type.Optional(Type.String({ description: 'Required `aud` claim. Default: not checked.' })),
      algorithms: Type.Optional(
        Type.Array(Type.String(), { minItems: 1, description: 'Accepted algorithms, e.g. [HS256] or [RS256, ES256]. Default: any the key supports.' }),
      ),
    }, { description: 'A JWT from a Bearer header or a cookie, verified with a secret or a JWKS.' })),
  },
  { description: 'Verified identity: a JWT checked before classification; its claims feed jwtClaims.' },
);

export const PathNormalization = Strict(
  {
    mergeSlashes: Type.Optional(Type.Boolean({ description: 'Merge runs of slashes ("//" → "/") before matching and forwarding. Default true.' })),
    escapedSlashes: Type.Optional(Type.Union([Type.Literal('reject'), Type.Literal('keep'), Type.Literal('unescape')], {
      description: '%2F, %5C and a literal backslash in the path: reject (400, default), keep (data, forwarded encoded) or unescape (a path separator).',
      errorMessage: 'reject, keep or unescape',
    })),
  },
  { description: 'How request paths are normalised (RFC 3986 §6.2.2, §5.2.4) before routing, classification and forwarding; the upstream receives the normalised path.' },
);

export const TelemetrySettings = Strict(
  {
    legacyMetricNames: Type.Optional(Type.Boolean({
      description: 'Also export the metric names of 0.1 (sluice_queue_wait, sluice_request_duration in ms, sluice_shaped_total) next to the unit-suffixed ones. Default false; removed in the next release.',
    })),
  },
  { description: 'Telemetry settings read at start-up.' },
);

export const Cluster = Strict(
  {
    store: Strict(
      { redis: Type.String({ pattern: '^rediss?://', description: 'redis://[user:pass@]HOST:PORT[/DB] holding the leases (the same server as shared rate limits is fine).' }) },
      { description: 'Where the leases live.' },
    ),
    instance: Type.Optional(Name('This instance\'s name among the members; unique. Default HOSTNAME-PID.')),
    leaseTtl: Type.Optional(Duration('A share not renewed this long returns to the others (crashed instance). Default 2s.')),
    renewInterval: Type.Optional(Duration('How often each instance renews its shares and reports its demand. Default 100ms.')),
  },
  {
    description:
      "Makes every upstream maxConcurrent, limits.maxConcurrent, class concurrency and reserve a limit of all instances together: each holds a lease on a share sized by its demand (docs/cluster.md).",
  },
);

export const PolicySchema = Strict(
  {
    $schema: Type.Optional(Type.String()),
    listen: Type.Optional(Type.Union([Listen, Type.Array(Listen, { minItems: 1 })], {
      description: 'One listener, or a list of them (e.g. TLS on 8443 beside cleartext on 8080). --port overrides the first.',
    })),
    admin: Type.Optional(Admin),
    trustedProxies: Type.Optional(
      Type.Array(Type.String(), {
        description: 'CIDRs of proxies in front of sluice whose X-Forwarded-For is believed. Default none.',
      }),
    ),
    trustedHeaders: Type.Optional(
      Type.Array(Type.String({ pattern: '^[A-Za-z0-9-]+$' }), {
        description: 'Headers honoured only from trustedProxies: removed from any other peer\'s requests before classification and forwarding (e.g. x-tier set by your gateway). Default none.',
      }),
    ),
    identity: Type.Optional(Identity),
    pathNormalization: Type.Optional(PathNormalization),
    telemetry: Type.Optional(TelemetrySettings),
    cluster: Type.Optional(Cluster),
    limits: Type.Optional(
      Strict(
        {
        maxConcurrent: Type.Optional(Type.Integer({ minimum: 1, description: 'Global cap on requests in flight. Default: unlimited.' })),
        maxQueued: Type.Optional(
          Type.Integer({
            minimum: 0,
            description: 'Global cap on queued requests; when reached, a higher-priority arrival sheds the newest lowest-priority waiter. Default 10000.',
          }),
        ),
        maxHeaderSize: Type.Optional(Size('Request header bytes; more: 431. Default 16KiB.')),
        maxBodySize: Type.Optional(Size('Request body bytes; more: 413. Default unlimited.')),
        maxUrlLength: Type.Optional(Type.Integer({ minimum: 16, description: 'Request target (path and query) length; longer: 414. Default 8192.' })),
        http2MaxConcurrentStreams: Type.Optional(Type.Integer({ minimum: 1, description: 'Streams one HTTP/2 connection may have open. Default 128.' })),
        buffering: Type.Optional(
          Strict(
            {
              request: Type.Optional(Size('Request body bytes read in full before the request takes an upstream slot (NGINX proxy_request_buffering); a longer body is streamed after its first this-many bytes. 0: off. Default 64KiB.')),
              response: Type.Optional(Size('Response body bytes read from the upstream at its own speed, so its slot is freed while the client drains them (NGINX proxy_buffering); a longer response is streamed. 0: off. Default 1MiB.')),
              budget: Type.Optional(Size('All request and response buffers together; when spent, requests and responses stream unbuffered. Default 64MiB.')),
            },
            { description: 'Buffers that keep slow clients from holding upstream slots.' },
          ),
        ),
        },
        { description: 'Proxy-wide limits.' },
      ),
    ),
    timeouts: Type.Optional(
      Strict(
        {
          requestHeaders: Type.Optional(Duration('Whole request head must arrive within this (slowloris). Default 10s.')),
          requestBodyIdle: Type.Optional(Duration('Request body stalls this long while being forwarded: 408. Default 30s.')),
          keepAlive: Type.Optional(Duration('Idle client connections (HTTP/1.1 keep-alive, HTTP/2 sessions) close after this. Default 5s for HTTP/1.1; HTTP/2 sessions get 12x.')),
          requestBody: Type.Optional(Duration('Whole request body must arrive within this from the request head: 408. Default 5m.')),
          minBodyRate: Type.Optional(
            Type.Union([Rate(''), Type.Literal('off')], {
              description: 'A client that sends its request body, or reads its response, slower than this over minBodyRateWindow while sluice waits on it is cut (408 when an answer can still be given). off: no minimum. Default 1KiB/s.',
              errorMessage: 'a byte rate such as 1KiB/s, or off',
            }),
          ),
          minBodyRateWindow: Type.Optional(Duration('Window over which minBodyRate is averaged. Default 10s.')),
        },
        { description: 'Client-side timeouts that defeat slow clients.' },
      ),
    ),
    shutdown: Type.Optional(
      Strict(
        { grace: Type.Optional(Duration('Time to finish in-flight and queued work. Default 30s.')) },
        { description: 'Graceful shutdown on SIGTERM/SIGINT.' },
      ),
    ),
    upstreams: Type.Array(Upstream, { minItems: 1, description: 'Backends requests are forwarded to.' }),
    routes: Type.Array(Route, { minItems: 1, description: 'Which upstream a request goes to; first match wins, no match: 404.' }),
    classes: Type.Optional(
      Type.Array(Klass, { description: 'Traffic classes; first match wins. Default: one class named default.' }),
    ),
    defaultClass: Type.Optional(Name('Class of requests no class matches. Required when classes are given.')),
    log: Type.Optional(LogSchema),
    errors: Type.Optional(ErrorsSchema),
    serverTiming: Type.Optional(ServerTimingSchema),
  },
  { $id: 'https://sluice.dev/policy.schema.json', title: 'sluice policy' },
);

export type RawPolicy = Static<typeof PolicySchema>;
export type RawUpstream = Static<typeof Upstream>;
export type RawRoute = Static<typeof Route>;
export type RawClass = Static<typeof Klass>;
export type RawClassMatch = Static<typeof ClassMatch>;
export type RawRouteMatch = Static<typeof RouteMatch>;
export type RawValueMatcher = Static<typeof ValueMatcher>;
export type RawRateLimit = Static<typeof RateLimit>;
export type RawBandwidth = Static<typeof Bandwidth>;
export type RawIdentity = Static<typeof Identity>;
export type RawPathNormalization = Static<typeof PathNormalization>;
export type RawListen = Static<typeof Listen>;
export type RawListenTls = Static<typeof ListenTls>;
export type RawUpstreamTls = Static<typeof UpstreamTls>;
export type RawSticky = Static<typeof Sticky>;
export type RawHealthCheck = Static<typeof HealthCheck>;
export type RawRewrite = Static<typeof Rewrite>;
export type RawRequestHeaders = Static<typeof RequestHeaders>;
export type RawResponseHeaders = Static<typeof ResponseHeaders>;
export type RawAccess = Static<typeof Access>;
export type RawBalance = Static<typeof Balance>;
export type RawCluster = Static<typeof Cluster>;
