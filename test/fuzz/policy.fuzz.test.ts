/**
 * Property-based tests: the policy loader and the unit parsers never throw, and
 * every rejection of a policy carries a position inside the file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parsePolicy } from '../../src/policy/load.js';
import { parseCidr, parseDuration, parseRate, parseSize } from '../../src/policy/units.js';
import { compileValue, compileGlob, compileHost } from '../../src/classify/matchers.js';

const VALID = `upstreams:
  - name: api
    targets: [http://127.0.0.1:3000]
    maxConcurrent: 8
routes:
  - match: { pathPrefix: /api }
    upstream: api
classes:
  - name: gold
    priority: 0
    match: { headers: { x-tier: gold }, clientIp: [10.0.0.0/8] }
    queue: { size: 10, timeout: 1s }
  - name: free
    priority: 1
defaultClass: free
`;

function checkResult(text: string): void {
  const r = parsePolicy(text, 'f.yaml');
  if (r.ok) return;
  const lines = text.split('\n').length;
  assert.ok(r.issues.length > 0);
  for (const i of r.issues) {
    assert.ok(i.line >= 1 && i.line <= lines + 1, `line ${i.line} outside 1..${lines + 1}: ${i.message}`);
    assert.ok(i.col >= 1, `col ${i.col}`);
    assert.ok(i.message.length > 0);
  }
}

test('arbitrary text never crashes the loader; rejections carry positions', () => {
  fc.assert(fc.property(fc.string({ maxLength: 300 }), (s) => checkResult(s)), { numRuns: 500 });
});

test('mutations of a valid policy never crash the loader; rejections carry positions', () => {
  const mutation = fc.tuple(fc.nat(VALID.length - 1), fc.nat(8), fc.string({ maxLength: 12 }));
  fc.assert(
    fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (muts) => {
      let t = VALID;
      for (const [at, del, ins] of muts) t = t.slice(0, at % t.length) + ins + t.slice((at % t.length) + del);
      checkResult(t);
    }),
    { numRuns: 1000 },
  );
});

test('random JSON-ish documents (YAML is a superset of JSON) never crash the loader', () => {
  fc.assert(fc.property(fc.jsonValue({ maxDepth: 4 }), (v) => checkResult(JSON.stringify(v))), { numRuns: 500 });
});

test('unit parsers return a number or undefined, never throw', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 30 }), (s) => {
      for (const f of [parseDuration, parseSize, parseRate]) {
        const v = f(s);
        assert.ok(v === undefined || (typeof v === 'number' && Number.isFinite(v) && v >= 0), `${f.name}(${JSON.stringify(s)}) = ${v}`);
      }
      const c = parseCidr(s);
      assert.ok(c === undefined || (Array.isArray(c) && c[1] >= 0 && c[1] <= 128));
    }),
    { numRuns: 2000 },
  );
});

test('durations and sizes round-trip for generated valid inputs', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 100_000 }), fc.constantFrom(['ms', 1], ['s', 1000], ['m', 60_000]), (n, [unit, mult]) => {
      assert.equal(parseDuration(`${n}${unit}`), n * (mult as number));
    }),
  );
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 1_000_000 }), fc.constantFrom(['KiB', 1024], ['MiB', 1024 * 1024], ['kB', 1000], ['B', 1]), (n, [unit, mult]) => {
      assert.equal(parseSize(`${n}${unit}`), n * (mult as number));
    }),
  );
});

test('matchers never throw on arbitrary request values', () => {
  const hostM = compileHost(['api.example.com', '*.example.org']);
  const glob = compileGlob('/reports/**');
  const exact = compileValue(['a', 'b']);
  const re = compileValue({ regex: '^pro' });
  fc.assert(
    fc.property(fc.string({ maxLength: 60 }), fc.option(fc.string({ maxLength: 20 }), { nil: undefined }), (s, v) => {
      hostM(s.toLowerCase());
      glob(s);
      exact(v);
      re(v);
    }),
    { numRuns: 2000 },
  );
});
