/**
 * The one schema of a policy file. Types (`RawPolicy`), runtime validation (ajv)
 * and the published policies/policy.schema.json all derive from it.
 *
 * Every object rejects unknown keys: a typo must be an error, never a silent default.
 */
import { Type, type Static, type TObject, type TProperties, type ObjectOptions } from '@sinclair/typebox';

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

export const Listen = Strict(
  {
    host: Type.Optional(Type.String({ default: '127.0.0.1', description: 'Address to bind. Default 127.0.0.1.' })),
    port: Type.Optional(Port('Port to bind; 0 picks an ephemeral port. Default 8080.')),
  },
  { description: 'Proxy listener: HTTP/1.1 and HTTP/2 cleartext (prior knowledge) on one port.' },
);

export const Admin = Strict(
  {
    host: Type.Optional(Type.String({ description: 'Admin bind address. Default 127.0.0.1 (loopback only).' })),
    port: Type.Optional(Port('Admin port; 0 picks an ephemeral port. Default 9901.')),
    token: Type.Optional(Type.String({ minLength: 16, description: 'POST /reload requires "Authorization: Bearer <token>". Default: no token (loopback only is the protection).' })),
    tokenFile: Type.Optional(Type.String({ description: 'File holding the reload token.' })),
  },
  { description: 'Admin listener (health, status, metrics, reload).' },
);

export const Upstream = Strict({
  name: Name('Unique upstream name, referenced by routes.'),
  targets: Type.Array(Type.String({ pattern: '^http://[^/\\s]+/?$', description: 'http://HOST:PORT' }), {
    minItems: 1,
    description: 'One or more http://HOST:PORT targets, used round-robin.',
  }),
  maxConcurrent: Type.Optional(Type.Integer({
    minimum: 1,
    description: 'Never more requests in flight to this upstream (all targets together). Default: unlimited.',
  })),
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
  keepAlive: Type.Optional(Strict(
    {
      maxSockets: Type.Optional(Type.Integer({ minimum: 1, description: 'Max sockets per target. Default 256.' })),
      maxFreeSockets: Type.Optional(Type.Integer({ minimum: 0, description: 'Idle sockets kept per target. Default 64.' })),
      idleTimeout: Type.Optional(Duration('Idle pooled sockets are closed after this. Default 30s.')),
    },
    { description: 'Keep-alive connection pool to each target.' },
  )),
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
  }, { description: 'Bounded wait for a slot; full: 503 at once.' })),
  maxBodySize: Type.Optional(Size('Request body bytes for this class; more: 413. Default: the route\'s limit.')),
  rateLimit: Type.Optional(RateLimit),
  bandwidth: Type.Optional(Bandwidth),
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
    listen: Type.Optional(Listen),
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
export type RawCluster = Static<typeof Cluster>;
