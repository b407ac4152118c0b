#!/usr/bin/env node
/**
 * `npm prepare`: builds dist/ with TypeScript when it is installed (a clone with
 * dev dependencies). Under `npm ci --omit=dev` TypeScript is absent: say how to
 * build in one line and succeed, instead of dying on `tsc: not found`.
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';

const require = createRequire(import.meta.url);
let tsc;
try {
  tsc = require.resolve('typescript/bin/tsc');
} catch {
  const built = existsSync(new URL('../dist/cli.js', import.meta.url));
  process.stdout.write(
    built
      ? 'sluice prepare: TypeScript not installed (production install); using the dist/ already built\n'
      : 'sluice prepare: TypeScript not installed (production install), dist/ not built: run `npm ci && npm run build`, or install the packed package (npm pack) instead\n',
  );
  process.exit(0);
}
const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { stdio: 'inherit' });
process.exit(r.status ?? 1);
