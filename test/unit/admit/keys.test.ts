import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ipKey, canonicalIp } from '../../../src/admit/keys.js';
import { stripPorts } from '../../../src/classify/client-ip.js';

test('IPv6 addresses inside one /64 share a key; other prefixes are configurable', () => {
  const a = ipKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd', 64);
  assert.equal(a, '2001:db8:1:2::/64');
  assert.equal(ipKey('2001:db8:1:2::1', 64), a);
  assert.equal(ipKey('2001:DB8:1:2:0:0:0:FFFF', 64), a);
  assert.notEqual(ipKey('2001:db8:1:3::1', 64), a);
  assert.equal(ipKey('2001:db8:1:2:3::1', 48), '2001:db8:1::/48');
  assert.equal(ipKey('2001:db8:1:2:3::1', 56), '2001:db8:1::/56');
  assert.equal(ipKey('2001:db8:1:2ff:3::1', 56), '2001:db8:1:200::/56');
  assert.equal(ipKey('2001:db8::1', 128), '2001:db8::1');
  assert.equal(ipKey('2001:db8::1', 1), '::/1');
});

test('spellings of one address are one key: IPv4-mapped, zero compression, case', () => {
  assert.equal(ipKey('::ffff:10.1.2.3', 64), '10.1.2.3');
  assert.equal(ipKey('::FFFF:10.1.2.3', 64), '10.1.2.3');
  assert.equal(ipKey('10.1.2.3', 64), '10.1.2.3');
  assert.equal(canonicalIp('2001:0DB8:0000:0000:0000:0000:0000:0001'), '2001:db8::1');
  assert.equal(canonicalIp('::ffff:192.0.2.1'), '192.0.2.1');
  assert.equal(ipKey('', 64), '-');
  assert.equal(ipKey('not-an-ip', 64), 'not-an-ip');
});

test('property: every address in a random /64 maps to the same key (seed 16)', () => {
  let n = 0;
  fc.assert(
    fc.property(fc.ipV6(), fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 4, maxLength: 4 }), fc.integer({ min: 1, max: 64 }), (addr, low, prefix) => {
      const full = canonicalIp(addr);
      if (full.includes('.')) return true; // IPv4-mapped/embedded: IPv4 rules
      const groups = expand(full);
      const rotated = [...groups.slice(0, 4), ...low.map((x) => x.toString(16))].join(':');
      n++;
      return ipKey(full, prefix) === ipKey(rotated, prefix) && ipKey(rotated.toUpperCase(), prefix) === ipKey(full, prefix);
    }),
    { seed: 16, numRuns: 2000 },
  );
  console.log(`ipv6 prefix property: ${n} rotations checked`);
});

function expand(a: string): string[] {
  const [head, tail] = a.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  if (tail === undefined) return h;
  return [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
}

test('X-Forwarded-For entries lose their ports (Azure front door), bare IPv6 stays', () => {
  assert.equal(stripPorts('203.0.113.7:51234'), '203.0.113.7');
  assert.equal(stripPorts('[2001:db8::7]:443, 10.0.0.1:80'), '2001:db8::7, 10.0.0.1');
  assert.equal(stripPorts('[2001:db8::7]'), '2001:db8::7');
  assert.equal(stripPorts('2001:db8::7, 10.0.0.1'), '2001:db8::7, 10.0.0.1');
  assert.equal(stripPorts(['1.2.3.4:1', '5.6.7.8:2']), '1.2.3.4, 5.6.7.8');
  assert.equal(stripPorts('1.2.3.4'), '1.2.3.4');
});
