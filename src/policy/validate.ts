/**
 * Schema validation with ajv, turned into short messages that say what was
 * expected, keyed by the instance path so the loader can put a line:col on them.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { PolicySchema, DURATION_RE, SIZE_RE, RATE_RE } from './schema.js';

export interface SchemaIssue {
  /** Path of the offending node: keys and sequence indices. */
  path: (string | number)[];
  /** Point at the key itself rather than its value (unknown keys). */
  atKey: boolean;
  message: string;
}

const patternNames: Record<string, string> = {
  [DURATION_RE]: 'a duration such as 250ms, 5s or 1m',
  [SIZE_RE]: 'a size such as 64KiB, 1MiB or 500kB',
  [RATE_RE]: 'a rate such as 1MiB/s or 500kB/s',
};

let compiled: ValidateFunction | undefined;
function validator(): ValidateFunction {
  compiled ??= new Ajv({ allErrors: true, strict: false, verbose: true }).compile(PolicySchema);
  return compiled;
}

function toPath(instancePath: string): (string | number)[] {
  if (instancePath === '') return [];
  return instancePath
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  return String(v);
}

/** Closest known key by edit distance, for "did you mean". */
function suggest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

function message(e: ErrorObject): { message: string; atKey: boolean; extra?: string } {
  const got = describe(e.data);
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String((e.params as { additionalProperty: string }).additionalProperty);
      const known = Object.keys((e.parentSchema as { properties?: object })?.properties ?? {});
      const hint = suggest(key, known);
      return {
        message: `unknown key '${key}'${hint ? ` (did you mean '${hint}'?)` : ''}; expected one of: ${known.join(', ')}`,
        atKey: true,
        extra: key,
      };
    }
    case 'required':
      return { message: `missing required key '${(e.params as { missingProperty: string }).missingProperty}'`, atKey: false };
    case 'type':
      return { message: `must be ${article((e.params as { type: string }).type)}, got ${got}`, atKey: false };
    case 'pattern': {
      const p = (e.params as { pattern: string }).pattern;
      const what = patternNames[p] ?? `a string matching ${p}`;
      return { message: `must be ${what}, got ${got}`, atKey: false };
    }
    case 'anyOf': {
      const what = (e.parentSchema as { errorMessage?: string })?.errorMessage ?? 'one of the accepted forms';
      return { message: `must be ${what}, got ${got}`, atKey: false };
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'minItems':
    case 'minLength':
      return { message: `${e.message ?? 'is out of range'}, got ${got}`, atKey: false };
    default:
      return { message: `${e.message ?? 'is invalid'}, got ${got}`, atKey: false };
  }
}

function article(type: string): string {
  const t = type === 'object' ? 'mapping' : type === 'array' ? 'list' : type;
  return /^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`;
}

export function validateSchema(doc: unknown): SchemaIssue[] {
  const validate = validator();
  if (validate(doc)) return [];
  const errors = validate.errors ?? [];
  // Errors raised inside the branches of an anyOf repeat what the anyOf says; keep the anyOf one,
  // unless the value's shape picks one mapping branch ("a mapping or a list of them", e.g. listen):
  // then that branch's own errors say more.
  const unions = errors.filter((e) => e.keyword === 'anyOf');
  const chosen = new Map(unions.map((e) => [e, shapeBranch(e)]));
  const kept = errors.filter((e) => {
    for (const u of unions) {
      const prefix = u.schemaPath.replace(/\/anyOf$/, '/anyOf/');
      const branch = chosen.get(u);
      if (e === u && branch !== undefined) return false;
      if (e.schemaPath.startsWith(prefix)) return branch !== undefined && e.schemaPath.startsWith(`${prefix}${branch}/`);
    }
    return true;
  });
  const issues: SchemaIssue[] = [];
  const seen = new Set<string>();
  for (const e of kept) {
    const m = message(e);
    const path = toPath(e.instancePath);
    if (m.extra !== undefined) path.push(m.extra);
    const key = `${path.join('.')}|${m.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    issues.push({ path, atKey: m.atKey, message: m.message });
  }
  return issues;
}

/** The one anyOf branch that is a mapping (or a list of mappings) when the value has that shape. */
function shapeBranch(e: ErrorObject): number | undefined {
  const branches = (Array.isArray(e.schema) ? e.schema : []) as { type?: string; properties?: object; items?: { properties?: object } }[];
  const want = Array.isArray(e.data) ? 'array' : e.data !== null && typeof e.data === 'object' ? 'object' : undefined;
  if (!want) return undefined;
  const idx = branches.flatMap((b, i) => (b.type === want && (b.properties || b.items?.properties) ? [i] : []));
  return idx.length === 1 && branches.filter((b) => b.type === want).length === 1 ? idx[0] : undefined;
}
