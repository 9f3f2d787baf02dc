// Plain JavaScript on purpose: a worker runs this before any TypeScript, because the first .ts
// module a process loads makes Node instantiate its type stripper (swc compiled to WebAssembly),
// which holds ~17 MiB of resident memory for the life of the process. Workers are many and long
// lived; the primary strips every module once, and workers load the JavaScript it left here.
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { findPackageJSON, registerHooks, stripTypeScriptTypes } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const TYPESCRIPT = /\.(ts|mts)$/;

/**
 * The directory of stripped sources, created if needed: `TOLLGATE_CACHE_DIR`, else one under the
 * system's temporary directory per user. Workers execute what is in it, so a directory another user
 * could write to, or swap for their own through its parent, is refused (with the reason).
 * @returns {{ dir: string } | { error: string }}
 */
export function openStrippedSources(dir = process.env.TOLLGATE_CACHE_DIR || join(tmpdir(), `tollgate-${process.getuid?.() ?? 'user'}`, 'stripped')) {
  try {
    if (!process.getuid) return { error: 'no user ids on this platform to check the directory against' };
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const problem = unsafeDirectory(dir, false) ?? unsafeDirectory(dirname(dir), true);
    return problem === null ? { dir } : { error: problem };
  } catch (error) {
    return { error: `${dir}: ${error.message}` };
  }
}

/** Why `dir` is not safe to run code from, or null. A parent may be shared if sticky (as /tmp is). */
function unsafeDirectory(dir, parent) {
  const stat = lstatSync(dir);
  if (!stat.isDirectory()) return `${dir} is not a directory`;
  if (stat.uid !== process.getuid() && !(parent && stat.uid === 0)) return `${dir} belongs to another user`;
  if ((stat.mode & 0o022) !== 0 && !(parent && (stat.mode & 0o1000) !== 0)) return `${dir} is writable by other users`;
  return null;
}

/**
 * The cache file of a module: named by a hash of what decides its JavaScript (node's version, the
 * module's path and package type, its source), so an edited file is never served stale.
 */
function entryPath(dir, url, source) {
  const hash = createHash('sha256');
  hash.update(`${process.version}\0${url}\0${packageType(url)}\0`);
  hash.update(source);
  return join(dir, `${hash.digest('hex')}.mjs`);
}

const packageTypes = new Map();

function packageType(url) {
  const manifest = findPackageJSON(url);
  if (manifest === undefined) return '';
  let type = packageTypes.get(manifest);
  if (type === undefined) {
    try {
      type = String(JSON.parse(readFileSync(manifest, 'utf8')).type ?? '');
    } catch {
      type = '';
    }
    packageTypes.set(manifest, type);
  }
  return type;
}

function typeScriptFile(url) {
  if (!url.startsWith('file:')) return null;
  const { pathname, search, hash } = new URL(url);
  return TYPESCRIPT.test(pathname) && search === '' && hash === '' ? fileURLToPath(url) : null;
}

/** Writes a module's stripped JavaScript unless it is there already (atomically: workers may be reading). */
function store(dir, url, source) {
  const path = entryPath(dir, url, source);
  if (existsSync(path)) return;
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, strip(source), { mode: 0o600 });
  renameSync(temporary, path);
}

/**
 * Node's own stripper, the one it runs silently on every .ts module; called by name it warns that it
 * is experimental, which would tell the operator nothing about the gateway, so that one warning is held back.
 */
function strip(source) {
  const emitWarning = process.emitWarning;
  process.emitWarning = (warning, ...rest) => {
    if (!String(warning).includes('stripTypeScriptTypes')) emitWarning.call(process, warning, ...rest);
  };
  try {
    return stripTypeScriptTypes(source, { mode: 'strip' });
  } finally {
    process.emitWarning = emitWarning;
  }
}

/**
 * For the primary (and `tollgate check`): every TypeScript ES module this process loads from now on
 * (the config and the plugins it imports) is stripped into `dir` for the workers.
 */
export function storeLoadedModules(dir) {
  registerHooks({
    load(url, context, nextLoad) {
      const result = nextLoad(url, context);
      if (result.format === 'module-typescript' && typeScriptFile(url) !== null) {
        try {
          store(dir, url, String(result.source));
        } catch {
          // A cache that cannot be written costs workers memory, never a failed start.
        }
      }
      return result;
    },
  });
}

// Folders a project's own modules are not in: packages (Node does not strip under node_modules),
// build output, and tools' hidden folders.
const SKIPPED_FOLDERS = new Set(['node_modules', 'dist', 'build', 'coverage']);

/**
 * Strips the TypeScript ES modules under `root` into `dir`, up to `limit` files: tollgate's own
 * sources, and the config's folder, where the task modules that only workers and their threads
 * import usually live. Files Node would load as CommonJS are left alone.
 * @returns {number} the modules stripped now (the others were cached already)
 */
export function storeModulesUnder(dir, root, limit = 2_000) {
  let stored = 0;
  let seen = 0;
  const folders = [root];
  while (folders.length > 0 && seen < limit) {
    const folder = folders.pop();
    let entries;
    try {
      entries = readdirSync(folder, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const entry of entries) {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) {
        if (!entry.name.startsWith('.') && !SKIPPED_FOLDERS.has(entry.name)) folders.push(path);
        continue;
      }
      if (!entry.isFile() || !TYPESCRIPT.test(entry.name) || /\.d\.m?ts$/.test(entry.name) || ++seen > limit) continue;
      const url = pathToFileURL(path).href;
      try {
        const source = readFileSync(path, 'utf8');
        if (!isModule(url, source)) continue;
        if (existsSync(entryPath(dir, url, source))) continue;
        store(dir, url, source);
        stored++;
      } catch {
        // A file that cannot be read or stripped is left to the worker, which reports it properly.
      }
    }
  }
  return stored;
}

/**
 * Whether Node loads the file as an ES module: .mts always; .ts in a package of type "module"; and,
 * as Node detects it, a .ts outside any typed package that has import or export statements.
 */
function isModule(url, source) {
  if (url.endsWith('.mts')) return true;
  const type = packageType(url);
  return type === 'module' || (type === '' && /^(import|export)[\s{*]/m.test(source));
}

/** Removes stripped copies not written for `maxAgeMs` (edited files leave their old copies behind). */
export function pruneStrippedSources(dir, maxAgeMs = 7 * 24 * 3600 * 1000) {
  const oldest = Date.now() - maxAgeMs;
  for (const name of readdirSync(dir)) {
    try {
      if (statSync(join(dir, name)).mtimeMs < oldest) unlinkSync(join(dir, name));
    } catch {
      // gone already (another primary pruning)
    }
  }
}

/**
 * For a worker: TypeScript ES modules whose stripped JavaScript is in `dir` load from there, without
 * Node's stripper. A module that is not there (a file edited since the primary stripped it) loads
 * as usual, so a missing or stale cache costs memory, never correctness.
 */
export function loadStrippedModules(dir) {
  registerHooks({
    load(url, context, nextLoad) {
      const path = typeScriptFile(url);
      if (path === null) return nextLoad(url, context);
      let source;
      try {
        source = readFileSync(path, 'utf8');
        return { format: 'module', source: readFileSync(entryPath(dir, url, source), 'utf8'), shortCircuit: true };
      } catch {
        return nextLoad(url, context);
      }
    },
  });
}
