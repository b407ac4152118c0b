/**
 * The key reference of docs/policy.md, generated from the schema so that the
 * documentation lists every key the loader accepts, with its description.
 */
import { PolicySchema } from './schema.js';

interface Node {
  type?: string;
  description?: string;
  properties?: Record<string, Node>;
  items?: Node;
  anyOf?: Node[];
  patternProperties?: Record<string, Node>;
  required?: string[];
  enum?: unknown[];
  const?: unknown;
  minimum?: number;
  maximum?: number;
}

function typeOf(n: Node): string {
  if (n.anyOf) return n.anyOf.map(typeOf).join(' \\| ');
  if (n.const !== undefined) return JSON.stringify(n.const);
  if (n.type === 'array') return `list of ${n.items ? typeOf(n.items) : 'any'}`;
  if (n.type === 'object' && n.patternProperties) return 'map';
  if (n.type === 'object') return 'mapping';
  return n.type ?? 'any';
}

function walk(n: Node, path: string, required: boolean, rows: string[][]): void {
  if (path) rows.push([`\`${path}\``, typeOf(n), required ? 'yes' : '', (n.description ?? '').replace(/\|/g, '\\|')]);
  if (n.properties) {
    for (const [k, v] of Object.entries(n.properties)) {
      if (k === '$schema') continue;
      walk(v, path ? `${path}.${k}` : k, n.required?.includes(k) ?? false, rows);
    }
  }
  // "One mapping or a list of them" (listen): the mapping's keys, listed once.
  const one = n.anyOf?.length === 2 ? n.anyOf.find((m) => m.properties) : undefined;
  if (one && n.anyOf!.some((m) => m.type === 'array' && m.items?.properties)) {
    for (const [k, v] of Object.entries(one.properties!)) walk(v, `${path}.${k}`, one.required?.includes(k) ?? false, rows);
  }
  if (n.type === 'array' && n.items?.properties) walk({ ...n.items, description: undefined } as Node, `${path}[]`, false, rows.length ? rows : rows);
  // Keys of the mapping forms of a union (sticky, rewrite, weighted targets) are listed too.
  const branches = n.anyOf ?? (n.type === 'array' ? n.items?.anyOf : undefined) ?? [];
  const at = n.anyOf ? path : `${path}[]`;
  for (const b of branches) {
    if (!b.properties) continue;
    for (const [k, v] of Object.entries(b.properties)) walk(v, `${at}.${k}`, b.required?.includes(k) ?? false, rows);
  }
}

export function referenceTable(): string {
  const rows: string[][] = [];
  walk(JSON.parse(JSON.stringify(PolicySchema)) as Node, '', true, rows);
  // Array element rows without a description only repeat their parent.
  const body = rows.filter((r) => !(r[0]!.endsWith('[]`') && r[3] === ''));
  return ['| key | type | required | meaning and default |', '|---|---|---|---|', ...body.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}
