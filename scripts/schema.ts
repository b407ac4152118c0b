/** Writes policies/policy.schema.json from the one schema in src/policy/schema.ts. */
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { jsonSchemaText } from '../src/policy/json-schema.js';

const out = fileURLToPath(new URL('../policies/policy.schema.json', import.meta.url));
await writeFile(out, jsonSchemaText());
process.stdout.write(`wrote ${out}\n`);
