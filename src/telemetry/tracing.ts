/**
 * Per-request tracing, by hand (no auto-instrumentation: it would double the
 * spans and slow the hot path). Configured by the standard OTEL_* environment
 * variables through @opentelemetry/sdk-node's NodeSDK; when no exporter is
 * configured nothing here is created and the pipeline pays one boolean check.
 *
 * Spans of one request (all times explicit, from the context's timestamps):
 *
 *   SERVER "GET route"        ctx.start ........................ end of response
 *   ├─ INTERNAL "queue"         queuedAt ... dequeuedAt (or rejection)
 *   └─ CLIENT "GET"                          upstreamStart ..... end of response
 *
 * The SERVER span continues an incoming `traceparent`; the CLIENT span's
 * context is injected upstream so the backend's spans join the trace. Spans
 * are started lazily: at the upstream call (the CLIENT context must exist
 * before the upstream headers are sent), or at the end for requests that
 * never reach an upstream. Export goes through the SDK's BatchSpanProcessor
 * (bounded queue, drops when full): it never blocks or fails a request.
 *
 * Cost: the sampler (OTEL_TRACES_SAMPLER) decides once, when the SERVER span is
 * started; a request it drops gets no queue or CLIENT span and no attributes,
 * only its span context for traceparent. The SERVER span's attributes are set
 * in one call when it ends. No context manager is registered (parents are always
 * explicit), so the process runs without the AsyncLocalStorage hook.
 *
 * W3C Trace Context (issue 16.7), with the SDK's W3CTraceContextPropagator:
 * a traceparent that does not parse (wrong length, upper-case hex, all-zero
 * ids, version ff, version 00 with extra fields, several traceparent headers)
 * restarts the trace with a new trace id; a future version is read by its
 * first four fields. What goes upstream is only what the propagator injects:
 * the client's traceparent and tracestate headers are removed first, so a
 * tracestate travels only with the valid parent it belongs to (never with a
 * restarted trace), and is re-serialised (invalid members dropped, at most 32).
 *
 * OpenTelemetry HTTP semantic conventions for failures: SERVER spans get
 * status ERROR and `error.type` for 5xx answers (the status code as a string)
 * and for exchanges that broke without a complete answer (`client_abort`);
 * 4xx leaves a SERVER span's status unset. CLIENT spans get status ERROR and
 * `error.type` for 4xx and 5xx upstream answers (the status code) and for
 * upstream calls that got no answer (`timeout`, `upstream_error`, or
 * `stale_connection` for an attempt retried on a fresh connection).
 */
import type { OutgoingHttpHeaders } from 'node:http';
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  diag,
  defaultTextMapGetter,
  defaultTextMapSetter,
  propagation,
  trace,
  type Attributes,
  type Context,
  type ContextManager,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import type { NodeSDK } from '@opentelemetry/sdk-node';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { RequestContext, Outcome } from '../accept/context.js';
import { systemClock, type Clock } from '../clock.js';

/** Trace state of one request, hung on `RequestContext.trace`. */
export class RequestTrace {
  client: Span | undefined = undefined;
  queueDone = false;
  /**
   * The sampler kept this request. When it did not, `server` is the SDK's
   * non-recording stand-in (it only carries the span context that goes upstream
   * and into the log): no child span is started and no attribute is computed.
   */
  readonly recording: boolean;
  constructor(readonly server: Span) {
    this.recording = server.isRecording();
  }

  get traceId(): string {
    return this.server.spanContext().traceId;
  }

  get spanId(): string {
    return this.server.spanContext().spanId;
  }
}

/** Which tracing setup the environment asks for; undefined: tracing off. */
export function tracesExporterFromEnv(env: NodeJS.ProcessEnv): string | undefined {
  if (/^(true|1)$/i.test(env.OTEL_SDK_DISABLED?.trim() ?? '')) return undefined;
  const list = (env.OTEL_TRACES_EXPORTER ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '' && s !== 'null');
  if (list.length > 0) return list[0] === 'none' ? undefined : list.join(',');
  // Unlike the SDK (which defaults to otlp on localhost:4318), nothing set means
  // nothing exported: the contract promises zero cost when unconfigured.
  if (env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return 'otlp';
  return undefined;
}

/**
 * Every span sluice starts names its parent explicitly, so no ambient context
 * is kept. The SDK's default (AsyncLocalStorage, on Node 20 an async hook) would
 * run code for every promise, tick and socket of the process, traced or not.
 */
class ExplicitContextOnly implements ContextManager {
  active(): Context {
    return ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(_ctx: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    return fn.call(thisArg, ...args);
  }
  bind<T>(_ctx: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    return this;
  }
}

/** The process-wide SDK: NodeSDK registers global providers, so it is started once and shared. */
let shared: { sdk: NodeSDK; refs: number } | undefined;

export interface TracingOptions {
  /** Service version reported as `service.version`. Default: none. */
  version?: string;
  /** The clock of the request timestamps (performance.now() based). Default: the system clock. */
  clock?: Clock;
}

function epoch(t: number): number {
  return performance.timeOrigin + t;
}

function protocolVersion(v: string | undefined): string {
  return v === '2.0' ? '2' : (v ?? '1.1');
}

export class Tracing {
  private readonly tracer: Tracer;
  private released = false;

  private constructor(
    readonly exporter: string,
    private readonly clock: Clock,
  ) {
    this.tracer = trace.getTracer('sluice');
  }

  /**
   * Starts tracing when the environment configures an exporter; undefined otherwise.
   * The SDK (and its exporters) is imported only then: it adds ~0.7 s and ~10 MiB to start-up.
   */
  static async fromEnv(env: NodeJS.ProcessEnv = process.env, opts: TracingOptions = {}): Promise<Tracing | undefined> {
    const exporter = tracesExporterFromEnv(env);
    if (!exporter) return undefined;
    if (!shared) {
      const { NodeSDK } = await import('@opentelemetry/sdk-node');
      if (shared) return Tracing.attach(exporter, opts);
      const sdk = new NodeSDK({
        // service.name from OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES wins over this default (env detector).
        resource: resourceFromAttributes({ 'service.name': 'sluice', ...(opts.version ? { 'service.version': opts.version } : {}) }),
        instrumentations: [],
        contextManager: new ExplicitContextOnly(),
        metricReaders: [],
        logRecordProcessors: [],
      });
      sdk.start();
      shared = { sdk, refs: 0 };
    }
    return Tracing.attach(exporter, opts);
  }

  private static attach(exporter: string, opts: TracingOptions): Tracing {
    shared!.refs++;
    return new Tracing(exporter, opts.clock ?? systemClock);
  }

  /** ForwardHooks.onUpstreamHeaders: opens the CLIENT span and injects its context upstream. */
  readonly onUpstreamHeaders = (ctx: RequestContext, headers: OutgoingHttpHeaders): void => {
    const t = ctx.trace ?? this.begin(ctx);
    // Only the propagator's view goes upstream: an unparsable parent's tracestate must not.
    delete headers.traceparent;
    delete headers.tracestate;
    if (!t.recording) {
      // Sampled out: the upstream continues the trace (its sampled flag off) from the SERVER span's context.
      propagation.inject(trace.setSpan(ROOT_CONTEXT, t.server), headers, defaultTextMapSetter);
      return;
    }
    const now = this.clock.now();
    if (!t.queueDone) this.queueSpan(ctx, t, now);
    if (t.client) {
      // A retry on a stale pooled connection: the first attempt failed.
      t.client.setAttribute('error.type', 'stale_connection');
      t.client.setStatus({ code: SpanStatusCode.ERROR, message: 'retried on a fresh connection' });
      t.client.end(epoch(now));
    }
    const up = ctx.route!.upstream;
    const attrs: Attributes = { 'http.request.method': ctx.method, 'url.path': ctx.path, 'sluice.upstream': up.name };
    if (up.targets.length === 1) {
      attrs['server.address'] = up.targets[0]!.hostname;
      attrs['server.port'] = up.targets[0]!.port;
    }
    const client = this.tracer.startSpan(ctx.method, { kind: SpanKind.CLIENT, startTime: epoch(now), attributes: attrs }, trace.setSpan(ROOT_CONTEXT, t.server));
    t.client = client;
    propagation.inject(trace.setSpan(ROOT_CONTEXT, client), headers, defaultTextMapSetter);
  };

  /** Ends the request's spans. `now` is on the context's clock. */
  finish(ctx: RequestContext, outcome: Outcome, now: number): void {
    const t = ctx.trace ?? this.begin(ctx);
    if (!t.recording) return; // nothing was started that needs ending
    if (!t.queueDone) this.queueSpan(ctx, t, now);
    const server = t.server;
    const end = epoch(now);
    if (t.client) {
      const c = t.client;
      const failed = ctx.status >= 400 && ctx.upstreamHeadersAt > 0;
      if (ctx.upstreamHeadersAt > 0) {
        c.setAttribute('http.response.status_code', ctx.status);
        c.addEvent('response.headers', epoch(ctx.upstreamHeadersAt));
      }
      if (failed) {
        c.setAttribute('error.type', String(ctx.status));
        c.setStatus({ code: SpanStatusCode.ERROR });
      } else if (outcome === 'upstream_error' || outcome === 'upstream_timeout') {
        c.setAttribute('error.type', outcome === 'upstream_timeout' ? 'timeout' : 'upstream_error');
        c.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
      }
      c.end(end);
    }
    // Every SERVER attribute in one call, once: what was known at arrival and what the exchange decided.
    const req = ctx.req;
    const k = ctx.klass;
    const a: Attributes = {
      'http.request.method': ctx.method,
      'url.path': ctx.path,
      'url.scheme': 'http',
      'server.address': ctx.host,
      'client.address': ctx.clientIp || ctx.peer,
      'network.peer.address': ctx.peer,
      'network.protocol.version': protocolVersion(req.httpVersion),
      'user_agent.original': req.headers['user-agent'],
      'sluice.outcome': outcome,
      'sluice.queue.wait_ms': ctx.queuedAt > 0 ? (ctx.dequeuedAt > 0 ? ctx.dequeuedAt : now) - ctx.queuedAt : 0,
    };
    if (ctx.status > 0) a['http.response.status_code'] = ctx.status;
    if (k) {
      a['sluice.class'] = k.name;
      a['sluice.priority'] = k.priority;
    }
    const route = ctx.route;
    if (route) {
      a['sluice.route'] = route.name;
      a['sluice.upstream'] = route.upstream.name;
      a['http.route'] = route.name;
      server.updateName(`${ctx.method} ${route.name}`);
    }
    if (outcome === 'forwarded' && ctx.upstreamHeadersAt > 0) {
      // Body transfer after the upstream's headers: where bandwidth shaping shows.
      a['sluice.response.transfer_ms'] = now - ctx.upstreamHeadersAt;
      // Counted on the way to the client (telemetry/access-log.ts withByteCounts).
      a['http.response.body.size'] = ctx.bytesOut;
    }
    if (ctx.status >= 500) a['error.type'] = String(ctx.status);
    else if (outcome === 'client_abort' || outcome === 'upstream_error' || outcome === 'upstream_timeout') a['error.type'] = outcome;
    server.setAttributes(a);
    if (a['error.type'] !== undefined) server.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
    server.end(end);
  }

  /** Flushes what is buffered and, when the last user lets go, shuts the SDK down. Safe to call more than once. */
  async shutdown(): Promise<void> {
    if (this.released || !shared) return;
    this.released = true;
    const s = shared;
    if (--s.refs > 0) return;
    shared = undefined;
    await s.sdk.shutdown();
    // Let a later start register fresh global providers.
    trace.disable();
    propagation.disable();
    context.disable();
    diag.disable();
  }

  /**
   * The SERVER span, started at the request's arrival, continuing an incoming
   * traceparent. Its attributes are set once, when it ends (finish); the sampler
   * decides from the parent and the trace id.
   */
  private begin(ctx: RequestContext): RequestTrace {
    const parent = propagation.extract(ROOT_CONTEXT, ctx.req.headers, defaultTextMapGetter);
    const span = this.tracer.startSpan(ctx.method, { kind: SpanKind.SERVER, startTime: epoch(ctx.start) }, parent);
    const t = new RequestTrace(span);
    ctx.trace = t;
    return t;
  }

  /** The queue wait as a child span, from the scheduler's timestamps. */
  private queueSpan(ctx: RequestContext, t: RequestTrace, now: number): void {
    t.queueDone = true;
    if (ctx.queuedAt === 0) return;
    const end = ctx.dequeuedAt > 0 ? ctx.dequeuedAt : now;
    const span = this.tracer.startSpan(
      'queue',
      {
        kind: SpanKind.INTERNAL,
        startTime: epoch(ctx.queuedAt),
        attributes: { 'sluice.class': ctx.klass?.name, 'sluice.queue.wait_ms': end - ctx.queuedAt, 'sluice.granted': ctx.dequeuedAt > 0 },
      },
      trace.setSpan(ROOT_CONTEXT, t.server),
    );
    span.end(epoch(end));
  }
}
