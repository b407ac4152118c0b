/** Upstream framing decisions (forward/framing.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { OutgoingHttpHeaders } from 'node:http';
import { applyFraming, framingOf, transferCodingProblem } from '../../../src/forward/framing.js';
import type { InboundRequest } from '../../../src/accept/context.js';

const h1 = (headers: Record<string, string>): InboundRequest => ({ httpVersionMajor: 1, method: 'GET', headers }) as unknown as InboundRequest;
const h2 = (headers: Record<string, string>, endAfterHeaders: boolean): InboundRequest =>
  ({ httpVersionMajor: 2, method: 'GET', headers, stream: { endAfterHeaders } }) as unknown as InboundRequest;

test('framingOf: HTTP/1.1 and HTTP/2', () => {
  assert.deepEqual(framingOf(h1({})), { kind: 'none' });
  assert.deepEqual(framingOf(h1({ 'content-length': '12' })), { kind: 'length', length: 12 });
  assert.deepEqual(framingOf(h1({ 'transfer-encoding': 'chunked' })), { kind: 'chunked' });
  assert.deepEqual(framingOf(h2({}, true)), { kind: 'none' });
  assert.deepEqual(framingOf(h2({ 'content-length': '0' }, true)), { kind: 'length', length: 0 });
  assert.deepEqual(framingOf(h2({ 'content-length': '7' }, false)), { kind: 'length', length: 7 });
  assert.deepEqual(framingOf(h2({}, false)), { kind: 'chunked' });
});

test('applyFraming replaces whatever length headers came in', () => {
  const h: OutgoingHttpHeaders = { 'content-length': '99', 'transfer-encoding': 'gzip' };
  applyFraming(h, { kind: 'none' });
  assert.deepEqual(h, {});
  applyFraming(h, { kind: 'length', length: 3 });
  assert.deepEqual(h, { 'content-length': '3' });
  applyFraming(h, { kind: 'chunked' });
  assert.deepEqual(h, { 'transfer-encoding': 'chunked' });
});

test('transferCodingProblem: only chunked alone is forwarded', () => {
  assert.equal(transferCodingProblem(h1({ 'transfer-encoding': 'chunked' })), undefined);
  assert.equal(transferCodingProblem(h1({ 'transfer-encoding': 'Chunked' })), undefined);
  assert.equal(transferCodingProblem(h1({})), undefined);
  assert.deepEqual(transferCodingProblem(h1({ 'transfer-encoding': 'gzip, chunked' })), { status: 501, value: 'gzip, chunked' });
  assert.deepEqual(transferCodingProblem(h1({ 'transfer-encoding': 'xchunked' })), { status: 400, value: 'xchunked' });
  assert.deepEqual(transferCodingProblem(h1({ 'transfer-encoding': 'chunked, gzip' })), { status: 400, value: 'chunked, gzip' });
});
