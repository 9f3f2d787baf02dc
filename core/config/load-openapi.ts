import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GatewayError } from '../errors.ts';

// The YAML parser loads with the first YAML document, not with tollgate: every worker imports this
// module, few configs read YAML. Synchronously (yaml ships CommonJS too), as a config's top level
// calls loadOpenApi.
let yaml: typeof import('yaml') | null = null;
const yamlParser = (): typeof import('yaml') => (yaml ??= createRequire(import.meta.url)('yaml') as typeof import('yaml'));

/**
 * Reads an OpenAPI document from a `.json`, `.yaml` or `.yml` file, for `routesFromOpenApi` and the
 * `validate` plugin: `loadOpenApi(new URL('./orders.yaml', import.meta.url))` in a config. A file
 * that is missing or does not parse stops the config from loading, with the file and the line.
 */
export function loadOpenApi(file: string | URL): Record<string, unknown> {
  const path = file instanceof URL ? fileURLToPath(file) : file;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new GatewayError('TG_ERR_CONFIG_INVALID', `cannot read the OpenAPI document ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  let document: unknown;
  try {
    // JSON is YAML too, but JSON.parse reports JSON's errors the way JSON writers expect them.
    document = extname(path) === '.json' ? JSON.parse(text) : yamlParser().parse(text, { maxAliasCount: 1000 });
  } catch (error) {
    const where = yaml !== null && error instanceof yaml.YAMLParseError && error.linePos ? ` (line ${error.linePos[0].line}, column ${error.linePos[0].col})` : '';
    throw new GatewayError('TG_ERR_CONFIG_INVALID', `the OpenAPI document ${path} does not parse${where}: ${(error as Error).message.split('\n')[0]}`);
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    throw new GatewayError('TG_ERR_CONFIG_INVALID', `the OpenAPI document ${path} is not an object`);
  }
  return document as Record<string, unknown>;
}
