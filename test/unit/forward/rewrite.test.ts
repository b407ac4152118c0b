import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rewriteTarget, applyRequestHeaderRules, applyResponseHeaderRules } from '../../../src/forward/rewrite.js';

test('path rewrites keep the query string', () => {
  assert.equal(rewriteTarget({ kind: 'strip', prefix: '/api' }, '/api/users?x=1'), '/users?x=1');
  assert.equal(rewriteTarget({ kind: 'strip', prefix: '/api' }, '/api'), '/');
  assert.equal(rewriteTarget({ kind: 'strip', prefix: '/api' }, '/other'), '/other');
  assert.equal(rewriteTarget({ kind: 'replace', from: '/v1/', to: '/v2/' }, '/v1/a?b'), '/v2/a?b');
  assert.equal(rewriteTarget({ kind: 'regex', regex: /^\/u\/(\d+)$/g, replace: '/users/$1' }, '/u/42?full=1'), '/users/42?full=1');
  assert.equal(rewriteTarget({ kind: 'regex', regex: /-/g, replace: '_' }, '/a-b-c'), '/a_b_c');
  assert.equal(rewriteTarget({ kind: 'regex', regex: /^\/x/g, replace: '' }, '/x'), '/');
});

test('request header rules: remove, then set, then add', () => {
  const h: Record<string, string | string[] | number | undefined> = { 'x-debug': '1', 'x-env': 'dev', accept: 'a' };
  applyRequestHeaderRules({ remove: ['x-debug'], set: [['x-env', 'prod']], add: [['accept', 'b'], ['x-new', 'n']] }, h);
  assert.deepEqual(h, { 'x-env': 'prod', accept: ['a', 'b'], 'x-new': 'n' });
});

test('response header rules: remove, then set', () => {
  const h: Record<string, string | string[] | undefined> = { server: 'x', 'x-a': '1' };
  applyResponseHeaderRules({ remove: ['server'], set: [['x-a', '2'], ['x-frame-options', 'DENY']] }, h);
  assert.deepEqual(h, { 'x-a': '2', 'x-frame-options': 'DENY' });
});
