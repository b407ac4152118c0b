/**
 * The telemetry stage's interface to the rest of sluice: metrics (always on),
 * tracing (only when OTEL_* configures an exporter) and the request log's
 * trace fields. The pipeline sees two things: `onDone` (called once per
 * finished request) and `forwardHooks` (the upstream headers hook, present
 * only when tracing is on, so that the hot path has nothing to call otherwise).
 */
import type { RequestContext } from '../accept/context.js';
import type { Clock } from '../clock.js';
import type { ForwardHooks } from '../forward/proxy.js';
import type { SchedulerStatus } from '../schedule/scheduler.js';
import type { OutgoingHttpHeaders } from 'node:http';
import { Metrics, type ShapedDirection } from './metrics.js';
import { Tracing, tracesExporterFromEnv } from './tracing.js';

export { Metrics, recordShapedBytes, type ShapedDirection } from './metrics.js';
export { Tracing, RequestTrace, tracesExporterFromEnv } from './tracing.js';
export { INSTRUMENTS, LEGACY_INSTRUMENTS } from './instruments.js';

export interface TelemetryOptions {
  clock: Clock;
  /** Environment read for OTEL_* settings. Default: process.env. */
  env?: NodeJS.ProcessEnv;
  /** Reported as `service.version` on spans. Default: none. */
  version?: string;
  /** Also export the 0.1 metric names (policy telemetry.legacyMetricNames). Default false. */
  legacyMetricNames?: boolean;
}

export class Telemetry {
  readonly metrics: Metrics;
  /** Undefined until `startTracing()`, and after it when no trace exporter is configured. */
  tracing: Tracing | undefined = undefined;
  /**
   * Hooks for the forward stage, handed to the pipeline at construction (which
   * may copy them). Empty when the environment configures no tracing; else
   * `onUpstreamHeaders` delegates to the tracer once `startTracing()` has run.
   */
  readonly forwardHooks: ForwardHooks;
  private readonly clock: Clock;
  private readonly env: NodeJS.ProcessEnv;
  private readonly version: string | undefined;
  private tracingStarted: Promise<void> | undefined;

  constructor(opts: TelemetryOptions) {
    this.env = opts.env ?? process.env;
    this.clock = opts.clock;
    this.version = opts.version;
    this.metrics = new Metrics({ serviceName: this.env.OTEL_SERVICE_NAME || 'sluice', legacyNames: opts.legacyMetricNames ?? false });
    this.metrics.activate();
    this.forwardHooks = tracesExporterFromEnv(this.env) ? { onUpstreamHeaders: this.onUpstreamHeaders } : {};
  }

  private readonly onUpstreamHeaders = (ctx: RequestContext, headers: OutgoingHttpHeaders): void => {
    if (this.tracing) this.tracing.onUpstreamHeaders(ctx, headers);
  };

  /** PipelineOptions.onShapedBytes: bytes let through a class's shaper. */
  readonly onShapedBytes = (className: string, direction: ShapedDirection, n: number): void => {
    this.metrics.recordShapedBytes(className, direction, n);
  };

  /** Sets up tracing from OTEL_* (once; later calls wait for the first). */
  startTracing(): Promise<void> {
    this.tracingStarted ??= Tracing.fromEnv(this.env, { clock: this.clock, version: this.version }).then((t) => {
      this.tracing = t;
    });
    return this.tracingStarted;
  }

  /** Registers the queue and in-flight gauges. */
  observe(status: () => SchedulerStatus): void {
    this.metrics.observe(status);
  }

  /** PipelineOptions.onDone: once per finished request, after `ctx.outcome` is set. */
  readonly onDone = (ctx: RequestContext): void => {
    const now = this.clock.now();
    const outcome = ctx.outcome!;
    this.metrics.record(ctx, outcome, now);
    if (this.tracing) this.tracing.finish(ctx, outcome, now);
  };

  /** Flushes spans and stops the SDKs. Safe to call more than once. */
  async shutdown(): Promise<void> {
    await this.tracingStarted?.catch(() => undefined);
    await Promise.all([this.tracing?.shutdown(), this.metrics.shutdown()]);
  }
}
