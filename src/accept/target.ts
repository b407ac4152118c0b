/**
 * Request-target normalisation: the one path that routing, classification,
 * access rules, rate-limit keys and the upstream all see.
 *
 * Why: a rule on `/login` is sidestepped by `/x/../login` or `/%2e/login` when
 * the proxy matches the raw text and the upstream resolves it (Envoy
 * CVE-2019-9901). So the target is normalised once, on arrival, and the
 * normalised form is what is forwarded (the request's `url` is rewritten).
 *
 * Steps, in order (Envoy's `normalize_path`, `merge_slashes` and
 * `path_with_escaped_slashes_action` are the model):
 *  1. origin-form (`/p?q`) is kept; absolute-form (`http://h/p?q`, RFC 9112
 *     §3.2.2) is reduced to its path; `*` (OPTIONS) is kept; anything else, and
 *     a fragment (`#`), is refused.
 *  2. Percent-encodings (RFC 3986 §6.2.2.1-2): an encoded unreserved character
 *     (ALPHA DIGIT - . _ ~) is decoded, so `%2e%2e` is `..`; other encodings keep
 *     their meaning and get upper-case hex (`%c3` → `%C3`); a malformed one
 *     (`%`, `%4`, `%zz`) is refused.
 *  3. Slashes in disguise: `%2F`, `%5C` and a literal `\` follow
 *     `escapedSlashes`: `reject` (default: 400), `keep` (data, not a separator:
 *     forwarded as `%2F`/`%5C`), or `unescape` (a separator: `/`).
 *  4. `mergeSlashes` (default true, as nginx): `//` → `/`.
 *  5. Dot segments removed (RFC 3986 §5.2.4): `/a/./b` → `/a/b`, `/a/b/..` →
 *     `/a/`, `/../x` → `/x` (never above the root). A dot segment with path
 *     parameters (`/..;x/`, `/.;/`), which servlet containers resolve as `..`,
 *     is refused.
 *
 * The query string is forwarded byte for byte. The result is idempotent:
 * normalising a normalised target changes nothing (a property test checks it).
 */

import type { PathNormalizationPolicy } from '../policy/types.js';

/**
 * How request paths are normalised (policy `pathNormalization`): `mergeSlashes`
 * (default true) and `escapedSlashes`: reject (400, default) | keep (forwarded
 * encoded, data) | unescape (a `/`).
 */
export type PathNormalization = PathNormalizationPolicy;

export const DEFAULT_PATH_NORMALIZATION: PathNormalization = Object.freeze({ mergeSlashes: true, escapedSlashes: 'reject' });

/** A normalised target, or why it was refused (answered with 400). */
export type Target =
  | { readonly ok: true; readonly path: string; /** `?...` or '' */ readonly query: string }
  | { readonly ok: false; readonly reason: string };

const HEX = '0123456789ABCDEF';

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

function unreserved(c: number): boolean {
  return (
    (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 /* - */ || c === 46 /* . */ || c === 95 /* _ */ || c === 126 /* ~ */
  );
}

/** Normalises a request target (`req.url`). Pure; O(length). */
export function normalizeTarget(url: string, o: PathNormalization = DEFAULT_PATH_NORMALIZATION): Target {
  const qi = url.indexOf('?');
  let path = qi === -1 ? url : url.slice(0, qi);
  const query = qi === -1 ? '' : url.slice(qi);
  if (url.includes('#')) return { ok: false, reason: 'a request target carries no fragment (#)' };
  if (path.charCodeAt(0) !== 47 /* / */) {
    if (path === '*') return { ok: true, path, query };
    const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/]*/.exec(path);
    if (!m) return { ok: false, reason: 'the request target is not a path' };
    path = path.slice(m[0].length) || '/';
  }
  // Fast path: nothing to decode, no backslash, no empty or dot segment (nor `/.;`).
  if (!path.includes('%') && !path.includes('\\') && !path.includes('/.') && !path.includes('//')) return { ok: true, path, query };

  let s = '';
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 92 /* \ */) {
      if (o.escapedSlashes === 'reject') return { ok: false, reason: 'backslash in the path (pathNormalization.escapedSlashes: reject)' };
      s += o.escapedSlashes === 'unescape' ? '/' : '%5C';
      continue;
    }
    if (c !== 37 /* % */) {
      s += path[i];
      continue;
    }
    const h = hexVal(path.charCodeAt(i + 1));
    const l = hexVal(path.charCodeAt(i + 2));
    if (h < 0 || l < 0) return { ok: false, reason: 'malformed percent-encoding in the path' };
    const v = h * 16 + l;
    i += 2;
    if (unreserved(v)) s += String.fromCharCode(v);
    else if (v === 0x2f || v === 0x5c) {
      if (o.escapedSlashes === 'reject') return { ok: false, reason: 'encoded slash in the path (pathNormalization.escapedSlashes: reject)' };
      s += o.escapedSlashes === 'unescape' ? '/' : v === 0x2f ? '%2F' : '%5C';
    } else s += `%${HEX[h]}${HEX[l]}`;
  }
  // `/..;x/` is a dot segment to servlet containers (Tomcat, Jetty strip path
  // parameters before resolving) and a plain name here: ambiguous, so refused.
  if (DOT_PARAMS.test(s)) return { ok: false, reason: 'dot segment with path parameters (/..;) in the path' };
  return { ok: true, path: removeDotSegments(s, o.mergeSlashes), query };
}

const DOT_PARAMS = /\/\.\.?;/;

/** RFC 3986 §5.2.4 on an absolute path, optionally merging empty segments first. */
export function removeDotSegments(path: string, mergeSlashes: boolean): string {
  const segs = path.split('/');
  const out: string[] = [];
  const last = segs.length - 1;
  for (let i = 1; i <= last; i++) {
    const seg = segs[i]!;
    if (seg === '.' || seg === '..') {
      if (seg === '..') out.pop();
      if (i === last) out.push('');
      continue;
    }
    if (mergeSlashes && seg === '' && i !== last) continue;
    out.push(seg);
  }
  return `/${out.join('/')}`;
}
