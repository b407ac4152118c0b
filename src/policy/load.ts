/**
 * Policy loading: YAML text → schema validation → semantic checks → frozen
 * typed `Policy`. Every problem carries FILE:LINE:COL and the key path.
 */
import { readFile } from 'node:fs/promises';
import { referencedPath } from './files.js';
import { tlsFileRefs } from './tls.js';
import { LineCounter, parseDocument, isMap, isPair, isScalar, type Document, type Node } from 'yaml';
import { validateSchema } from './validate.js';
import { compilePolicy } from './compile.js';
import type { RawPolicy } from './schema.js';
import type { Policy } from './types.js';

export interface PolicyIssue {
  file: string;
  line: number;
  col: number;
  /** Dotted key path, e.g. classes[1].queue.timeout ('' for the document). */
  path: string;
  message: string;
}

export type LoadResult = { ok: true; policy: Policy } | { ok: false; issues: PolicyIssue[] };

export function formatIssue(i: PolicyIssue): string {
  return `${i.file}:${i.line}:${i.col}: ${i.path ? `${i.path}: ` : ''}${i.message}`;
}

export function formatPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? p : `.${p}`;
  return out;
}

/** Maps key paths to source positions of one parsed document. */
export class Positions {
  constructor(
    private readonly doc: Document,
    private readonly lc: LineCounter,
    private readonly file: string,
  ) {}

  /** Position of the node at path (or of its key when atKey), falling back to the nearest ancestor. */
  issue(path: readonly (string | number)[], message: string, atKey = false): PolicyIssue {
    const offset = this.offset(path, atKey);
    const { line, col } = this.lc.linePos(offset);
    return { file: this.file, line, col, path: formatPath(path), message };
  }

  private offset(path: readonly (string | number)[], atKey: boolean): number {
    for (let n = path.length; n >= 0; n--) {
      const sub = path.slice(0, n);
      if (atKey && n === path.length && n > 0) {
        const parent = sub.length > 1 ? this.doc.getIn(sub.slice(0, -1), true) : this.doc.contents;
        if (isMap(parent)) {
          const last = sub[sub.length - 1];
          const pair = parent.items.find((it) => isPair(it) && isScalar(it.key) && it.key.value === last);
          const key = pair?.key as Node | undefined;
          if (key?.range) return key.range[0];
        }
        continue;
      }
      const node = (n === 0 ? this.doc.contents : this.doc.getIn(sub, true)) as Node | null | undefined;
      if (node && typeof node === 'object' && 'range' in node && node.range) return node.range[0];
    }
    return 0;
  }
}

/**
 * Parses policy text. `files` holds the contents of files the policy refers to
 * (identity secretFile/jwksFile), read beforehand so that parsing stays synchronous.
 */
export function parsePolicy(text: string, file: string, files: ReadonlyMap<string, string> = new Map()): LoadResult {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      issues: doc.errors.map((e) => {
        const { line, col } = lc.linePos(e.pos[0]);
        return { file, line, col, path: '', message: `YAML: ${e.message.split('\n')[0]}` };
      }),
    };
  }
  const positions = new Positions(doc, lc, file);
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (err) {
    // Unresolved aliases and alias bombs surface only when the document is turned into values.
    return { ok: false, issues: [{ file, line: 1, col: 1, path: '', message: `YAML: ${(err as Error).message}` }] };
  }
  const schemaIssues = validateSchema(raw);
  if (schemaIssues.length > 0) {
    const issues = schemaIssues.map((s) => positions.issue(s.path, s.message, s.atKey));
    return { ok: false, issues: issues.sort((a, b) => a.line - b.line || a.col - b.col) };
  }
  const r = compilePolicy(raw as RawPolicy, file, positions, files);
  if (!r.ok) r.issues.sort((a, b) => a.line - b.line || a.col - b.col);
  return r;
}

/** Reads and loads a policy file. Async so that reloads never block the event loop. */
export async function loadPolicyFile(file: string): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    return { ok: false, issues: [{ file, line: 1, col: 1, path: '', message: `cannot read policy: ${(err as Error).message}` }] };
  }
  return parsePolicy(text, file, await referencedFiles(text, file));
}

async function referencedFiles(text: string, file: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let raw: unknown;
  try {
    raw = parseDocument(text).toJS();
  } catch {
    return out;
  }
  const r = raw as { identity?: { jwt?: { secretFile?: unknown; jwksFile?: unknown } }; admin?: { tokenFile?: unknown } } | null;
  const jwt = r?.identity?.jwt;
  for (const ref of [jwt?.secretFile, jwt?.jwksFile, r?.admin?.tokenFile, ...tlsFileRefs(raw)]) {
    if (typeof ref !== 'string') continue;
    const path = referencedPath(file, ref);
    try {
      out.set(path, await readFile(path, 'utf8'));
    } catch {
      // Missing files are reported by compile, with the key's position.
    }
  }
  return out;
}
