import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { normalizeTarget, removeDotSegments, DEFAULT_PATH_NORMALIZATION, type PathNormalization } from '../../../src/accept/target.js';

const KEEP: PathNormalization = { mergeSlashes: true, escapedSlashes: 'keep' };
const UNESCAPE: PathNormalization = { mergeSlashes: true, escapedSlashes: 'unescape' };
const NOMERGE: PathNormalization = { mergeSlashes: false, escapedSlashes: 'reject' };

function path(url: string, o: PathNormalization = DEFAULT_PATH_NORMALIZATION): string {
  const t = normalizeTarget(url, o);
  assert.ok(t.ok, `${url} refused: ${t.ok ? '' : t.reason}`);
  return t.path;
}
function refused(url: string, o: PathNormalization = DEFAULT_PATH_NORMALIZATION): string {
  const t = normalizeTarget(url, o);
  assert.ok(!t.ok, `${url} accepted as ${t.ok ? t.path : ''}`);
  return t.reason;
}

test('the issue: every spelling of /login normalises to /login (or /login/)', () => {
  for (const u of ['/x/../login', '/./login', '/%2e%2e/login', '/%2E%2E/login', '/%2e/login', '//login', '/login/.', '/a/b/../../login', '/../login', '/.%2e/login', '/%2e./login', '/%6c%6f%67%69%6e', '/lo%67in', '///login', '/x/..//login']) {
    assert.match(path(u), /^\/login\/?$/, u);
  }
  assert.equal(path('/login/.'), '/login/');
  assert.equal(path('/login?x=/../y'), '/login');
});

test('RFC 3986 §5.2.4 examples and edge cases', () => {
  assert.equal(removeDotSegments('/a/b/c/./../../g', false), '/a/g');
  assert.equal(removeDotSegments('/mid/content=5/../6', false), '/mid/6');
  assert.equal(path('/'), '/');
  assert.equal(path('/..'), '/');
  assert.equal(path('/a/b/..'), '/a/');
  assert.equal(path('/a/.'), '/a/');
  assert.equal(path('/a/..b/c'), '/a/..b/c');
  assert.equal(path('/a/.b'), '/a/.b');
  assert.equal(path('/a//b/..', NOMERGE), '/a//');
  assert.equal(path('//login', NOMERGE), '//login');
});

test('percent-encodings: unreserved decoded, others upper-cased, malformed refused', () => {
  assert.equal(path('/%7euser/%41%2d'), '/~user/A-');
  assert.equal(path('/caf%c3%a9'), '/caf%C3%A9');
  assert.equal(path('/a%20b'), '/a%20b');
  assert.equal(path('/100%25'), '/100%25');
  for (const u of ['/a%', '/a%4', '/a%zz', '/%g0/x']) refused(u);
  // Servlet containers resolve /..;/ as ..: ambiguous, refused (also when spelled %2e%2e;).
  for (const u of ['/x/..;/login', '/x/..;jsessionid=1/login', '/.;/login', '/x/%2e%2e;/login']) refused(u);
  assert.equal(path('/login;jsessionid=1'), '/login;jsessionid=1');
  assert.equal(path('/a/..b;c/d'), '/a/..b;c/d');
});

test('escaped slashes and backslashes: reject (default), keep, unescape', () => {
  for (const u of ['/x%2F..%2Flogin', '/x%2f..%2flogin', '/x%5C..%5Clogin', '/x\\..\\login', '\\login']) refused(u);
  assert.equal(path('/x%2f..%2flogin', KEEP), '/x%2F..%2Flogin');
  assert.equal(path('/x\\..\\login', KEEP), '/x%5C..%5Clogin');
  assert.equal(path('/x%2f..%2flogin', UNESCAPE), '/login');
  assert.equal(path('/x\\..\\login', UNESCAPE), '/login');
  assert.equal(path('/x%5c..%5clogin', UNESCAPE), '/login');
});

test('target forms: absolute-form reduced to its path, * kept, fragments and garbage refused', () => {
  assert.equal(path('http://example.com/x/../login?q=1'), '/login');
  assert.equal(normalizeTarget('http://example.com/a?q=1').ok && (normalizeTarget('http://example.com/a?q=1') as { query: string }).query, '?q=1');
  assert.equal(path('http://example.com'), '/');
  assert.equal(path('*'), '*');
  refused('/a#frag');
  refused('login');
  refused('');
});

test('property: output is idempotent, has no dot segments, no encoded unreserved chars, no // when merging (seed 16)', () => {
  const seg = fc.oneof(
    fc.constantFrom('', '.', '..', '%2e', '%2E%2e', '.%2e', 'a', 'b', 'login', '%41', '%c3%a9', '%2f', '%5C', '\\', '~', '%7E', '..a', 'a.'),
    fc.stringMatching(/^[a-z0-9._~-]{0,4}$/),
  );
  const url = fc.array(seg, { minLength: 0, maxLength: 8 }).map((s) => `/${s.join('/')}`);
  const opts = fc.record({ mergeSlashes: fc.boolean(), escapedSlashes: fc.constantFrom('reject' as const, 'keep' as const, 'unescape' as const) });
  let ok = 0;
  let refusedN = 0;
  fc.assert(
    fc.property(url, opts, (u, o) => {
      const t = normalizeTarget(u, o);
      if (!t.ok) {
        refusedN++;
        return true;
      }
      ok++;
      const again = normalizeTarget(t.path, o);
      assert.ok(again.ok);
      assert.equal(again.path, t.path);
      assert.ok(!t.path.split('/').some((s) => s === '.' || s === '..'), t.path);
      assert.ok(!/%(2[dDeE]|5[fF]|7[eE]|[46][1-9a-fA-F]|[57][0-9aA]|3[0-9])/.test(t.path), t.path);
      assert.ok(!t.path.includes('\\'));
      if (o.mergeSlashes) assert.ok(!t.path.includes('//'), t.path);
      return true;
    }),
    { seed: 16, numRuns: 5000 },
  );
  console.log(`path normalisation property: ${ok} normalised, ${refusedN} refused`);
  assert.ok(ok > 1000 && refusedN > 100);
});
