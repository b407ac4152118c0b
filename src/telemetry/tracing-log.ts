/**
 * Tracing in the log: one start-up line saying whether tracing is on and where
 * it exports, and a `warn` when exporting fails, at most one per `everyMs`
 * (default 60 s) with the count of failures since the last line, without a
 * stack trace. Export failures reach OpenTelemetry's global error handler,
 * which writes to `diag` (@opentelemetry/api); this installs a diag logger.
 */
import { diag, DiagLogLevel, type DiagLogger } from '@opentelemetry/api';
import type { Clock } from '../clock.js';
import { tracesExporterFromEnv } from './tracing.js';
import type { Logger } from './log.js';

export interface TracingTarget {
  exporter: string;
  /** OTLP endpoint (traces endpoint when given, else the base endpoint + /v1/traces); undefined for other exporters. */
  endpoint: string | undefined;
  protocol: string | undefined;
}

/** What OTEL_* says about trace export (the OpenTelemetry SDK environment variable spec defaults). */
export function tracingTarget(env: NodeJS.ProcessEnv): TracingTarget | undefined {
  const exporter = tracesExporterFromEnv(env);
  if (!exporter) return undefined;
  if (exporter !== 'otlp') return { exporter, endpoint: undefined, protocol: undefined };
  const protocol = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL || env.OTEL_EXPORTER_OTLP_PROTOCOL || 'http/protobuf';
  const grpc = protocol === 'grpc';
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT || (grpc ? 'http://localhost:4317' : 'http://localhost:4318');
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || (grpc ? base : `${base.replace(/\/$/, '')}/v1/traces`);
  return { exporter, endpoint, protocol };
}

export function logTracingStart(log: Logger, env: NodeJS.ProcessEnv): void {
  const t = tracingTarget(env);
  if (!t) log.info({ tracing: false }, 'tracing off (no OTEL_TRACES_EXPORTER or OTEL_EXPORTER_OTLP_ENDPOINT set)');
  else log.info({ tracing: true, ...t, service: env.OTEL_SERVICE_NAME || 'sluice' }, `tracing on: ${t.exporter}${t.endpoint ? ` to ${t.endpoint}` : ''}`);
}

/** Routes OpenTelemetry's diag errors (export failures) to rate-limited pino warnings. */
export function watchExportFailures(log: Logger, clock: Clock, everyMs = 60_000): void {
  let lastAt = -Infinity;
  let suppressed = 0;
  const warn = (message: string, args: unknown[]): void => {
    const now = clock.now();
    if (now - lastAt < everyMs) {
      suppressed++;
      return;
    }
    lastAt = now;
    const reason = args
      .map((a) => (a instanceof Error ? `${a.name}: ${a.message}` : typeof a === 'string' ? a : ''))
      .filter(Boolean)
      .join('; ');
    log.warn({ failuresSinceLastWarning: suppressed, reason: reason.slice(0, 500) || undefined }, `trace export failed: ${firstLine(message)}`);
    suppressed = 0;
  };
  const noop = (): void => {};
  const logger: DiagLogger = { error: (m, ...a) => warn(m, a), warn: noop, info: noop, debug: noop, verbose: noop };
  diag.setLogger(logger, { logLevel: DiagLogLevel.ERROR, suppressOverrideMessage: true });
}

/** The global error handler passes the error as JSON of its own properties (stack included): keep name, code and message. */
function firstLine(message: string): string {
  let text = message;
  try {
    const e = JSON.parse(message) as { name?: string; message?: string; code?: string | number };
    if (e && typeof e === 'object' && typeof e.message === 'string') {
      text = `${e.name ?? 'Error'}${e.code !== undefined ? ` (${e.code})` : ''}: ${e.message}`;
    }
  } catch {
    // not JSON: a plain message
  }
  return text.split('\n')[0]!.slice(0, 300);
}
