import { dirname, resolve } from 'node:path';

/** Files a policy refers to (secretFile, jwksFile) are relative to the policy's folder. */
export function referencedPath(policyFile: string, ref: string): string {
  return resolve(dirname(policyFile), ref);
}
