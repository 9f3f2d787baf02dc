import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { cosmiconfig, getDefaultSearchPlaces, type Loader } from 'cosmiconfig';
import { GatewayError } from '../errors.ts';
import { validateConfig, type ResolvedConfig } from './validate.ts';

export interface LoadedConfig {
  readonly filepath: string;
  readonly config: ResolvedConfig;
}

const MODULE_NAME = 'gateway';

// Node strips the types itself, so config files and the plugins they import need no build step and
// no TypeScript compiler API (which TypeScript 7 no longer has).
const importModule: Loader = async (filepath) => {
  const module = (await import(pathToFileURL(filepath).href)) as { default?: unknown };
  // A CommonJS file's module.exports arrives as `default` too.
  if (module.default === undefined) {
    throw new Error('it has no default export; write `export default defineConfig({ ... })`');
  }
  return module.default;
};

const explorer = cosmiconfig(MODULE_NAME, {
  searchStrategy: 'none',
  cache: false,
  loaders: { '.ts': importModule, '.mts': importModule, '.js': importModule, '.mjs': importModule, '.cjs': importModule },
});

/**
 * Finds (or, given a path, reads) the gateway config and validates it. Throws a GatewayError whose
 * message says what is wrong: no file, a file that fails to import, or an invalid config.
 */
export async function loadConfig(options: { path?: string | undefined; cwd?: string } = {}): Promise<LoadedConfig> {
  const cwd = options.cwd ?? process.cwd();
  let result;
  try {
    result = options.path ? await explorer.load(resolve(cwd, options.path)) : await explorer.search(cwd);
  } catch (error) {
    const where = options.path ? resolve(cwd, options.path) : cwd;
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && options.path) {
      throw new GatewayError('TG_ERR_CONFIG_NOT_FOUND', `config file not found: ${where}`, { cause: error });
    }
    throw new GatewayError('TG_ERR_CONFIG_LOAD', `could not load config ${where}: ${describeLoadError(error)}`, { cause: error });
  }
  if (!result || result.isEmpty) {
    throw new GatewayError(
      'TG_ERR_CONFIG_NOT_FOUND',
      result?.isEmpty
        ? `config file ${result.filepath} is empty`
        : `no gateway config found in ${cwd}; create gateway.config.ts or pass --config FILE (looked for: ${getDefaultSearchPlaces(MODULE_NAME).join(', ')})`,
    );
  }
  return { filepath: result.filepath, config: await validateConfig(result.config, result.filepath) };
}

function describeLoadError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  // Node prefixes module errors with a code that already says what kind of failure it is.
  const code = (error as NodeJS.ErrnoException).code;
  return code && !error.message.includes(code) ? `${code}: ${error.message}` : error.message;
}
