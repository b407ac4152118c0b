import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProxyError } from '../../../src/errors.js';
import { encodeGrpcMessage, grpcStatusOf, grpcStatusToTrailers, GrpcStatus, isGrpc } from '../../../src/accept/grpc.js';
import type { InboundRequest, InboundResponse } from '../../../src/accept/context.js';

test('sluice refusals map to gRPC statuses', () => {
  const of = (code: ConstructorParameters<typeof ProxyError>[0]): number => grpcStatusOf(new ProxyError(code, 'x'));
  assert.equal(of('RATE_LIMITED'), GrpcStatus.RESOURCE_EXHAUSTED);
  assert.equal(of('QUEUE_FULL'), GrpcStatus.UNAVAILABLE);
  assert.equal(of('SHED'), GrpcStatus.UNAVAILABLE);
  assert.equal(of('QUEUE_TIMEOUT'), GrpcStatus.DEADLINE_EXCEEDED);
  assert.equal(of('UPSTREAM_TIMEOUT'), GrpcStatus.DEADLINE_EXCEEDED);
  assert.equal(of('UPSTREAM_UNREACHABLE'), GrpcStatus.UNAVAILABLE);
  assert.equal(of('UPSTREAM_TLS'), GrpcStatus.UNAVAILABLE);
  assert.equal(of('NO_ROUTE'), GrpcStatus.UNIMPLEMENTED);
  assert.equal(of('BODY_TOO_LARGE'), GrpcStatus.RESOURCE_EXHAUSTED);
  // Codes added elsewhere fall back to gRPC's HTTP mapping by status.
  assert.equal(grpcStatusOf({ code: 'FORBIDDEN' as never, status: 403 }), GrpcStatus.PERMISSION_DENIED);
  assert.equal(grpcStatusOf({ code: 'X' as never, status: 401 }), GrpcStatus.UNAUTHENTICATED);
  assert.equal(grpcStatusOf({ code: 'X' as never, status: 418 }), GrpcStatus.UNKNOWN);
});

test('grpc-message is percent-encoded (printable ASCII except %)', () => {
  assert.equal(encodeGrpcMessage('queue full: 100%'), 'queue full: 100%25');
  assert.equal(encodeGrpcMessage('né\n'), 'n%C3%A9%0A');
});

test('gRPC requests are recognised by content-type', () => {
  const req = (ct?: string): InboundRequest => ({ headers: ct ? { 'content-type': ct } : {} }) as InboundRequest;
  assert.equal(isGrpc(req('application/grpc')), true);
  assert.equal(isGrpc(req('application/grpc+proto')), true);
  assert.equal(isGrpc(req('application/grpc-web+proto')), true);
  assert.equal(isGrpc(req('application/json')), false);
  assert.equal(isGrpc(req()), false);
  assert.equal(isGrpc(undefined), false);
});

test('a Trailers-Only upstream answer moves its status to trailers for HTTP/2 clients only', () => {
  const h2res = { stream: {} } as unknown as InboundResponse;
  const h1res = {} as InboundResponse;
  const headers = (): Record<string, string | undefined> => ({ 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': 'nope', 'x-a': '1' });
  const h = headers();
  assert.deepEqual(grpcStatusToTrailers(h, h2res), { 'grpc-status': '5', 'grpc-message': 'nope' });
  assert.deepEqual(h, { 'content-type': 'application/grpc', 'x-a': '1' });
  assert.equal(grpcStatusToTrailers(headers(), h1res), undefined);
  assert.equal(grpcStatusToTrailers({ 'content-type': 'application/grpc' }, h2res), undefined);
  assert.equal(grpcStatusToTrailers({ 'content-type': 'text/plain', 'grpc-status': '0' }, h2res), undefined);
});
