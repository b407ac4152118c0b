/** The published JSON Schema (draft 2020-12 compatible) for editors such as yaml-language-server. */
import { PolicySchema } from './schema.js';

export function jsonSchemaText(): string {
  // TypeBox schemas are plain JSON Schema plus symbol-keyed metadata, which JSON drops.
  const schema = { $schema: 'http://json-schema.org/draft-07/schema#', ...JSON.parse(JSON.stringify(PolicySchema)) };
  return `${JSON.stringify(schema, null, 2)}\n`;
}
