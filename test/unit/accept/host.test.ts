/** RFC 3986 authority checks and the absolute-form rewrite (accept/host.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { checkAuthority, isValidAuthority } from '../../../src/accept/host.js';
import { headWithoutUpgrade, isWebSocketUpgrade } from '../../../src/accept/upgrade.js';
import { headerListSize } from '../../../src/accept/header-list.js';

test('isValidAuthority: host[:port] by RFC 3986, no userinfo, ports 0-65535', () => {
  for (const ok of ['', 'a', 'a.example', 'A.EXAMPLE.', 'a.example:0', 'a.example:65535', 'a.example:', '127.0.0.1', '[::1]', '[::1]:8080', '[v1.x]', 'xn--bcher-kva.example', 'a%2Db', "a!$&'()*+,;=b"]) {
    assert.equal(isValidAuthority(ok), true, ok);
  }
  for (const bad of ['a.example/evil', 'user@a', 'user:pw@a', 'a:65536', 'a:99999', 'a:-1', 'a:1x', 'a b', 'a\tb', '[::1', '[zz::1]', '[::1]x', '[::1]:x', ':80', 'a%zz', 'a?b', 'a#b', 'a\\b', 'a"b', 'a:80:90']) {
    assert.equal(isValidAuthority(bad), false, bad);
  }
});

function h1(url: string, raw: string[]): IncomingMessage {
  const headers: Record<string, string> = {};
  for (let i = 0; i < raw.length; i += 2) headers[raw[i]!.toLowerCase()] ??= raw[i + 1]!;
  return { url, method: 'GET', httpVersion: '1.1', httpVersionMajor: 1, httpVersionMinor: 1, headers, rawHeaders: raw } as unknown as IncomingMessage;
}

test('checkAuthority: absolute-form rewritten to origin-form with the authority as Host', () => {
  const cases: [string, string, string][] = [
    ['http://a.example/x?y=1', '/x?y=1', 'a.example'],
    ['HTTPS://a.example:8443', '/', 'a.example:8443'],
    ['http://a.example?q', '/?q', 'a.example'],
    ['http://[::1]:80/p', '/p', '[::1]:80'],
  ];
  for (const [target, url, host] of cases) {
    const req = h1(target, ['Host', 'ignored']);
    assert.deepEqual(checkAuthority(req), { kind: 'ok' }, target);
    assert.equal(req.url, url);
    assert.equal(req.headers.host, host);
  }
  for (const target of ['http://u@a/x', 'ws://a/x', 'http:///x', 'http://a:x/', 'a.example/x', 'mailto:x']) {
    assert.equal(checkAuthority(h1(target, ['Host', 'a'])).kind, 'reject', target);
  }
  assert.equal(checkAuthority(h1('/', ['Host', 'a', 'host', 'a'])).kind, 'reject');
  assert.equal(checkAuthority(h1('*', ['Host', 'a'])).kind, 'ok');
  assert.equal(checkAuthority(h1('/', [])).kind, 'reject', 'HTTP/1.1 without Host');
  assert.equal(checkAuthority(h1('http://a/x', [])).kind, 'reject', 'absolute-form without Host');
  const h10 = { ...h1('/', []), httpVersion: '1.0', httpVersionMinor: 0 } as unknown as IncomingMessage;
  assert.equal(checkAuthority(h10).kind, 'ok', 'HTTP/1.0 without Host');
});

test('upgrade helpers: WebSocket only on GET, any case; head rebuilt without the upgrade', () => {
  const req = (method: string, upgrade: string): IncomingMessage => ({ method, headers: { upgrade } }) as unknown as IncomingMessage;
  assert.equal(isWebSocketUpgrade(req('GET', 'WebSocket')), true);
  assert.equal(isWebSocketUpgrade(req('GET', 'foo, websocket')), true);
  assert.equal(isWebSocketUpgrade(req('POST', 'websocket')), false);
  assert.equal(isWebSocketUpgrade(req('GET', 'h2c')), false);
  const head = headWithoutUpgrade({
    method: 'POST',
    url: '/x',
    httpVersion: '1.1',
    rawHeaders: ['Host', 'a', 'Connection', 'Upgrade, HTTP2-Settings, keep-alive', 'Upgrade', 'h2c', 'HTTP2-Settings', 'AAA', 'Content-Length', '2'],
  } as unknown as IncomingMessage);
  assert.equal(head, 'POST /x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n');
});

test('headerListSize: name + value + 32 octets per field (RFC 9113 §6.5.2)', () => {
  assert.equal(headerListSize([':path', '/', 'a', 'bc']), 5 + 1 + 32 + 1 + 2 + 32);
  assert.equal(headerListSize([]), 0);
});
