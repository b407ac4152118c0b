import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appCookieFromResponse, SessionTable, stickyCookie, targetToken } from '../../../src/forward/sticky.js';

test('sticky tokens are opaque, stable and distinct per target and upstream', () => {
  const a = targetToken('shop', 'http://127.0.0.1:3001');
  assert.equal(a, targetToken('shop', 'http://127.0.0.1:3001'));
  assert.notEqual(a, targetToken('shop', 'http://127.0.0.1:3002'));
  assert.notEqual(a, targetToken('other', 'http://127.0.0.1:3001'));
  assert.match(a, /^[A-Za-z0-9_-]{22}$/);
  assert.ok(!a.includes('3001') && !a.includes('127'));
});

test('the sticky Set-Cookie carries the configured attributes', () => {
  const line = stickyCookie({ kind: 'cookie', name: 'srv', maxAgeSec: 3600, secure: true, httpOnly: true, sameSite: 'Strict' }, 'tok');
  assert.equal(line, 'srv=tok; Max-Age=3600; Path=/; HttpOnly; Secure; SameSite=Strict');
  const session = stickyCookie({ kind: 'cookie', name: 'srv', secure: false, httpOnly: false, sameSite: 'Lax' }, 'tok');
  assert.equal(session, 'srv=tok; Path=/; SameSite=Lax');
});

test('application cookies are learned from Set-Cookie, deletions recognised', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.deepEqual(appCookieFromResponse(['a=1', 'JSESSIONID=abc; Path=/; HttpOnly'], 'JSESSIONID', now), { kind: 'set', value: 'abc' });
  assert.deepEqual(appCookieFromResponse('JSESSIONID="q"; Path=/', 'JSESSIONID', now), { kind: 'set', value: 'q' });
  assert.deepEqual(appCookieFromResponse('JSESSIONID=abc; Max-Age=0', 'JSESSIONID', now), { kind: 'clear', value: 'abc' });
  assert.deepEqual(appCookieFromResponse('JSESSIONID=abc; Expires=Thu, 01 Jan 1970 00:00:00 GMT', 'JSESSIONID', now), { kind: 'clear', value: 'abc' });
  assert.deepEqual(appCookieFromResponse('JSESSIONID=; Path=/', 'JSESSIONID', now), { kind: 'clear', value: undefined });
  assert.equal(appCookieFromResponse('XJSESSIONID=abc', 'JSESSIONID', now), undefined);
  assert.equal(appCookieFromResponse(undefined, 'JSESSIONID', now), undefined);
});

test('the session table is bounded, least recently used out first', () => {
  const t = new SessionTable(3);
  t.learn('a', 'A');
  t.learn('b', 'B');
  t.learn('c', 'C');
  assert.equal(t.get('a'), 'A'); // a is now the most recent
  t.learn('d', 'D');
  assert.equal(t.get('b'), undefined);
  assert.equal(t.get('a'), 'A');
  assert.equal(t.size, 3);
  t.forget('a');
  assert.equal(t.get('a'), undefined);
});
