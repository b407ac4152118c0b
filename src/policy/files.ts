import { dirname, resolve } from 'node:path';
import { tlsFileRefs } from './tls.js';

/** Files a policy refers to (secretFile, jwksFile) are relative to the policy's folder. */
export function referencedPath(policyFile: string, ref: string): string {
  return resolve(dirname(policyFile), ref);
}

/**
 * Every file a policy (raw, as parsed from YAML) refers to, as absolute paths:
 * the one list that loading reads and `--watch` watches. A key that names a
 * file (TLS cert/key/ca, ...) is added here and nowhere else.
 * Accepts any value: a policy that fails validation still yields what it names.
 */
export function referencedPaths(raw: unknown, policyFile: string): string[] {
  const r = raw as { identity?: { jwt?: { secretFile?: unknown; jwksFile?: unknown } }; admin?: { tokenFile?: unknown } } | null | undefined;
  const jwt = r?.identity?.jwt;
  const out: string[] = [];
  for (const ref of [jwt?.secretFile, jwt?.jwksFile, r?.admin?.tokenFile, ...tlsFileRefs(raw)]) {
    if (typeof ref === 'string') out.push(referencedPath(policyFile, ref));
  }
  return [...new Set(out)];
}
