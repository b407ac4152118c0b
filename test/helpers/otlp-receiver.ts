/**
 * A real OTLP/HTTP trace receiver for tests: accepts POST /v1/traces in
 * http/json and http/protobuf (optionally gzip), decodes the spans and keeps
 * them. Protobuf is decoded with protobufjs from the subset of the OTLP
 * trace proto (opentelemetry/proto/{collector/trace,trace,common,resource}/v1)
 * that spans need; unknown fields (links, dropped counts) are skipped.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import protobuf from 'protobufjs';

const OTLP_TRACE_PROTO = `
syntax = "proto3";
package otlp;
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; string schema_url = 3; }
message Resource { repeated KeyValue attributes = 1; uint32 dropped_attributes_count = 2; }
message ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; string schema_url = 3; }
message InstrumentationScope { string name = 1; string version = 2; repeated KeyValue attributes = 3; }
message Span {
  bytes trace_id = 1;
  bytes span_id = 2;
  string trace_state = 3;
  bytes parent_span_id = 4;
  string name = 5;
  int32 kind = 6;
  fixed64 start_time_unix_nano = 7;
  fixed64 end_time_unix_nano = 8;
  repeated KeyValue attributes = 9;
  repeated Event events = 11;
  Status status = 15;
  fixed32 flags = 16;
  message Event { fixed64 time_unix_nano = 1; string name = 2; repeated KeyValue attributes = 3; }
}
message Status { string message = 2; int32 code = 3; }
message KeyValue { string key = 1; AnyValue value = 2; }
message AnyValue {
  oneof value {
    string string_value = 1;
    bool bool_value = 2;
    int64 int_value = 3;
    double double_value = 4;
    ArrayValue array_value = 5;
    KeyValueList kvlist_value = 6;
    bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
`;

const ExportRequest = protobuf.parse(OTLP_TRACE_PROTO).root.lookupType('otlp.ExportTraceServiceRequest');

/** OTLP span kinds. */
export const SpanKind = { INTERNAL: 1, SERVER: 2, CLIENT: 3 } as const;
/** OTLP status codes. */
export const StatusCode = { UNSET: 0, OK: 1, ERROR: 2 } as const;

export type AttrValue = string | number | boolean | AttrValue[];

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** '' for a root span. */
  parentSpanId: string;
  traceState: string;
  name: string;
  kind: number;
  /** Epoch milliseconds (fractional). */
  startMs: number;
  endMs: number;
  attributes: Record<string, AttrValue>;
  events: { name: string; timeMs: number }[];
  status: { code: number; message: string };
  resource: Record<string, AttrValue>;
  scope: string;
}

export interface OtlpReceiver {
  url: string;
  spans: ReceivedSpan[];
  /** Content types of the export requests received. */
  contentTypes: string[];
  /** Resolves with the spans matching `pred` once there are at least `n` of them. */
  waitFor(pred: (s: ReceivedSpan) => boolean, n?: number, timeoutMs?: number): Promise<ReceivedSpan[]>;
  close(): Promise<void>;
}

// ---- decoding: protobufjs gives camelCase objects; OTLP JSON is the same shape with hex ids ----

interface RawAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number | { toString(): string };
  doubleValue?: number;
  arrayValue?: { values?: RawAnyValue[] };
  bytesValue?: string | Uint8Array;
}
interface RawKeyValue {
  key: string;
  value?: RawAnyValue;
}
type Id = string | Uint8Array | undefined;
type Nanos = string | number | { toString(): string } | undefined;
interface RawSpan {
  traceId?: Id;
  spanId?: Id;
  parentSpanId?: Id;
  traceState?: string;
  name?: string;
  kind?: number;
  startTimeUnixNano?: Nanos;
  endTimeUnixNano?: Nanos;
  attributes?: RawKeyValue[];
  events?: { timeUnixNano?: Nanos; name?: string }[];
  status?: { code?: number; message?: string };
}
interface RawRequest {
  resourceSpans?: {
    resource?: { attributes?: RawKeyValue[] };
    scopeSpans?: { scope?: { name?: string }; spans?: RawSpan[] }[];
  }[];
}

function hex(id: Id): string {
  if (id === undefined) return '';
  return typeof id === 'string' ? id.toLowerCase() : Buffer.from(id).toString('hex');
}

function ms(n: Nanos): number {
  if (n === undefined) return 0;
  return Number(BigInt(n.toString()) / 1000n) / 1000;
}

function value(v: RawAnyValue | undefined): AttrValue {
  if (!v) return '';
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue.toString());
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(value);
  return '';
}

function attrs(kvs: RawKeyValue[] | undefined): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const kv of kvs ?? []) out[kv.key] = value(kv.value);
  return out;
}

function flatten(req: RawRequest): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of req.resourceSpans ?? []) {
    const resource = attrs(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          traceId: hex(s.traceId),
          spanId: hex(s.spanId),
          parentSpanId: hex(s.parentSpanId),
          traceState: s.traceState ?? '',
          name: s.name ?? '',
          kind: s.kind ?? 0,
          startMs: ms(s.startTimeUnixNano),
          endMs: ms(s.endTimeUnixNano),
          attributes: attrs(s.attributes),
          events: (s.events ?? []).map((e) => ({ name: e.name ?? '', timeMs: ms(e.timeUnixNano) })),
          status: { code: s.status?.code ?? 0, message: s.status?.message ?? '' },
          resource,
          scope: ss.scope?.name ?? '',
        });
      }
    }
  }
  return out;
}

function decode(contentType: string, body: Buffer): RawRequest {
  if (contentType.startsWith('application/json')) return JSON.parse(body.toString('utf8')) as RawRequest;
  if (contentType.startsWith('application/x-protobuf')) {
    const msg = ExportRequest.decode(body);
    // bytes stay Uint8Array (hex() handles them); 64-bit ints become strings.
    return ExportRequest.toObject(msg, { longs: String, defaults: false }) as RawRequest;
  }
  throw new Error(`unsupported content-type ${contentType}`);
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const contentTypes: string[] = [];
  const waiters = new Set<() => void>();
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      try {
        let body = Buffer.concat(chunks);
        if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
        const ct = req.headers['content-type'] ?? '';
        contentTypes.push(ct);
        spans.push(...flatten(decode(ct, body)));
        for (const w of waiters) w();
        // An empty ExportTraceServiceResponse is valid in both encodings.
        if (ct.startsWith('application/json')) res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        else res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      } catch (err) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end(String(err));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    contentTypes,
    waitFor(pred, n = 1, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const found = spans.filter(pred);
          if (found.length < n) return false;
          clearTimeout(timer);
          waiters.delete(onSpans);
          resolve(found);
          return true;
        };
        const onSpans = (): void => void check();
        const timer = setTimeout(() => {
          waiters.delete(onSpans);
          reject(new Error(`waited ${timeoutMs} ms for ${n} span(s); have ${spans.length}: ${spans.map((s) => s.name).join(', ')}`));
        }, timeoutMs);
        if (!check()) waiters.add(onSpans);
      });
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
