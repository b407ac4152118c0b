/**
 * A real @grpc/grpc-js server and client for tests, on test/fixtures/echo.proto.
 * Unary echoes the message (plus request metadata) and sets trailing metadata;
 * Stream sends `count` replies; `delay_ms` delays the answer; `fail_code`
 * answers with that gRPC status and a message instead.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

const PROTO = fileURLToPath(new URL('../fixtures/echo.proto', import.meta.url));

export interface EchoRequest {
  message?: string;
  count?: number;
  delay_ms?: number;
  fail_code?: number;
}
export interface EchoReply {
  message: string;
  index: number;
}

type Ctor = new (address: string, creds: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => grpc.Client;

function echoService(): { service: grpc.ServiceDefinition; Client: Ctor } {
  const def = protoLoader.loadSync(PROTO, { keepCase: true, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { echo: { Echo: Ctor & { service: grpc.ServiceDefinition } } };
  return { service: pkg.echo.Echo.service, Client: pkg.echo.Echo };
}

export interface GrpcServer {
  port: number;
  /** Calls received, by method name. */
  calls: string[];
  /** Calls whose handler is still running (not yet answered or cancelled). */
  active: number;
  close(): Promise<void>;
}

export async function startGrpcServer(): Promise<GrpcServer> {
  const { service } = echoService();
  const server = new grpc.Server();
  const s: GrpcServer = { port: 0, calls: [], active: 0, close: async () => void server.forceShutdown() };
  const later = (ms: number, f: () => void, call: grpc.ServerUnaryCall<EchoRequest, EchoReply> | grpc.ServerWritableStream<EchoRequest, EchoReply>): void => {
    if (ms <= 0) return f();
    const t = setTimeout(f, ms);
    call.on('cancelled', () => clearTimeout(t));
  };
  const track = (call: grpc.ServerUnaryCall<EchoRequest, EchoReply> | grpc.ServerWritableStream<EchoRequest, EchoReply>): (() => void) => {
    s.active++;
    let done = false;
    const end = (): void => {
      if (!done) {
        done = true;
        s.active--;
      }
    };
    call.on('cancelled', end);
    return end;
  };
  server.addService(service, {
    Unary(call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) {
      s.calls.push('Unary');
      const end = track(call);
      const r = call.request;
      later(
        r.delay_ms ?? 0,
        () => {
          end();
          if (r.fail_code) {
            cb({ code: r.fail_code, details: `failed as asked: ${r.message}` });
            return;
          }
          const trailer = new grpc.Metadata();
          trailer.set('x-trailer', 'bye');
          const seen = call.metadata.get('x-caller')[0];
          cb(null, { message: `echo:${r.message}${seen ? ` from ${String(seen)}` : ''}`, index: 0 }, trailer);
        },
        call,
      );
    },
    Stream(call: grpc.ServerWritableStream<EchoRequest, EchoReply>) {
      s.calls.push('Stream');
      const end = track(call);
      const r = call.request;
      const header = new grpc.Metadata();
      header.set('x-header', 'hello');
      call.sendMetadata(header);
      let i = 0;
      const next = (): void => {
        if (call.cancelled) return;
        if (i >= (r.count ?? 0)) {
          end();
          if (r.fail_code) {
            call.emit('error', { code: r.fail_code, details: `stream failed as asked after ${i}` });
            return;
          }
          const trailer = new grpc.Metadata();
          trailer.set('x-trailer', `sent ${i}`);
          call.end(trailer);
          return;
        }
        call.write({ message: `${r.message}#${i}`, index: i });
        i++;
        later(r.delay_ms ?? 0, next, call);
      };
      next();
    },
  });
  s.port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
  return s;
}

export interface EchoClient {
  unary(req: EchoRequest, opts?: { deadlineMs?: number; metadata?: Record<string, string> }): Promise<{
    reply?: EchoReply;
    error?: grpc.ServiceError;
    headers: grpc.Metadata | undefined;
    trailers: grpc.Metadata | undefined;
  }>;
  stream(req: EchoRequest, opts?: { deadlineMs?: number }): Promise<{
    replies: EchoReply[];
    status: grpc.StatusObject | undefined;
    error?: grpc.ServiceError;
    headers: grpc.Metadata | undefined;
  }>;
  /** Starts a server stream and cancels it after `after` messages; resolves with the status grpc-js reports. */
  cancelStream(req: EchoRequest, after: number): Promise<grpc.StatusObject>;
  close(): void;
}

/** target: "127.0.0.1:PORT"; ca: PEM for a TLS target (server name localhost). */
export function echoClient(target: string, ca?: string): EchoClient {
  const { Client } = echoService();
  const creds = ca ? grpc.credentials.createSsl(Buffer.from(ca)) : grpc.credentials.createInsecure();
  const options: grpc.ChannelOptions = ca ? { 'grpc.ssl_target_name_override': 'localhost', 'grpc.default_authority': 'localhost' } : {};
  const c = new Client(target, creds, options) as grpc.Client & Record<string, (...args: unknown[]) => grpc.ClientUnaryCall & grpc.ClientReadableStream<EchoReply>>;
  const callOpts = (ms?: number): grpc.CallOptions => (ms ? { deadline: Date.now() + ms } : {});
  return {
    unary(req, opts = {}) {
      const md = new grpc.Metadata();
      for (const [k, v] of Object.entries(opts.metadata ?? {})) md.set(k, v);
      return new Promise((resolve) => {
        let headers: grpc.Metadata | undefined;
        let trailers: grpc.Metadata | undefined;
        let result: { reply?: EchoReply; error?: grpc.ServiceError } | undefined;
        let status = false;
        const done = (): void => {
          if (result && status) resolve({ ...result, headers, trailers });
        };
        const call = c.Unary!(req, md, callOpts(opts.deadlineMs), (error: grpc.ServiceError | null, reply?: EchoReply) => {
          result = error ? { error } : { reply: reply! };
          done();
        });
        call.on('metadata', (m: grpc.Metadata) => (headers = m));
        call.on('status', (st: grpc.StatusObject) => {
          trailers = st.metadata;
          status = true;
          done();
        });
      });
    },
    stream(req, opts = {}) {
      return new Promise((resolve) => {
        const replies: EchoReply[] = [];
        let headers: grpc.Metadata | undefined;
        let error: grpc.ServiceError | undefined;
        const call = c.Stream!(req, callOpts(opts.deadlineMs));
        call.on('metadata', (m: grpc.Metadata) => (headers = m));
        call.on('data', (d: EchoReply) => replies.push(d));
        call.on('error', (e: grpc.ServiceError) => (error = e));
        call.on('status', (status: grpc.StatusObject) => {
          // 'status' comes after 'end' or 'error'.
          setImmediate(() => resolve({ replies, status, headers, ...(error ? { error } : {}) }));
        });
      });
    },
    cancelStream(req, after) {
      return new Promise((resolve) => {
        const call = c.Stream!(req, {});
        let n = 0;
        call.on('data', () => {
          if (++n === after) call.cancel();
        });
        call.on('error', () => {});
        call.on('status', (st: grpc.StatusObject) => resolve(st));
      });
    },
    close: () => c.close(),
  };
}

export { grpc };
