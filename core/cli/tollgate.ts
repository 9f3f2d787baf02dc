#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load-config.ts';
import { runPrimary } from '../cluster/primary.ts';
import { prepareConfigFolder, prepareWorkerSources } from '../cluster/worker-sources.ts';
import bcrypt from 'bcryptjs';
import { hashKey, newKey } from '../../plugins/key-auth/key-hash.ts';
import { newPlugin } from './new-plugin.ts';

// 12 rounds: ~0.2 s per check on this machine's cores; basic-auth caches verified pairs.
const BCRYPT_COST = 12;

const USAGE = `Usage: tollgate <command> [options]

Commands:
  start          Start the gateway (primary process + cluster workers)
  check          Validate the config without starting anything
  reload         Ask the running gateway to reload its config (through the admin listener)
  hash-key [KEY] Print a new random API key and its hash for key-auth (or the hash of KEY)
  hash-password PASSWORD
                 Print a bcrypt hash of PASSWORD for basic-auth
  new plugin NAME
                 Scaffold a plugin in plugins/NAME (--dir to choose): options, hooks, a test, a README

Options:
  -c, --config FILE   Config file (default: gateway.config.ts and the usual alternatives, found in the cwd)
  -w, --workers N     Number of workers (start only; overrides the config, default one per core)
      --watch         Reload when the config file changes (start only)
      --dir DIR       Where "new plugin" writes (default: plugins)
  -h, --help          Show this help
`;

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        workers: { type: 'string', short: 'w' },
        watch: { type: 'boolean' },
        dir: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    process.stderr.write(`tollgate: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const command = positionals[0];
  if (values.help || command === undefined || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }

  switch (command) {
    case 'check':
      return check(values.config);
    case 'start': {
      const workers = values.workers === undefined ? undefined : Number(values.workers);
      if (workers !== undefined && !(Number.isInteger(workers) && workers >= 1)) {
        process.stderr.write(`tollgate: --workers expects a whole number >= 1, got "${values.workers}"\n`);
        return 2;
      }
      return runPrimary({ configPath: values.config, workers, watch: values.watch });
    }
    case 'reload':
      return reload(values.config);
    case 'hash-key': {
      const given = positionals[1];
      const { key, keyHash } = given === undefined ? newKey() : { key: given, keyHash: hashKey(given) };
      process.stdout.write(`key:     ${key}\nkeyHash: ${keyHash}\n`);
      return 0;
    }
    case 'hash-password': {
      const password = positionals[1];
      if (!password) {
        process.stderr.write('tollgate: hash-password needs the password as its argument\n');
        return 2;
      }
      process.stdout.write(`${await bcrypt.hash(password, BCRYPT_COST)}\n`);
      return 0;
    }
    case 'new':
      if (positionals[1] !== 'plugin') {
        process.stderr.write('tollgate: usage: tollgate new plugin NAME [--dir DIR]\n');
        return 2;
      }
      return newPlugin(positionals[2], values.dir);
    default:
      process.stderr.write(`tollgate: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

/** POSTs /reload to the admin listener the config declares, and prints the outcome. */
async function reload(configPath: string | undefined): Promise<number> {
  let admin;
  try {
    admin = (await loadConfig({ path: configPath })).config.admin;
  } catch (error) {
    process.stderr.write(`tollgate: ${(error as Error).message}\n`);
    return 1;
  }
  if (!admin || admin.port === 0) {
    process.stderr.write('tollgate: reload needs `admin: { port }` in the config (or send SIGHUP to the primary process)\n');
    return 1;
  }
  const url = `http://${admin.host.includes(':') ? `[${admin.host}]` : admin.host}:${admin.port}/reload`;
  try {
    const res = await fetch(url, { method: 'POST', headers: admin.token ? { authorization: `Bearer ${admin.token}` } : {} });
    const outcome = (await res.json()) as { result: string; problem?: string; error?: string };
    if (outcome.result === 'reloaded') {
      process.stdout.write('reloaded\n');
      return 0;
    }
    process.stderr.write(`tollgate: reload ${outcome.result ?? 'refused'}: ${outcome.problem ?? outcome.error ?? res.status}\n`);
    return 1;
  } catch (error) {
    process.stderr.write(`tollgate: cannot reach the admin listener at ${url}: ${(error as Error).message}\n`);
    return 1;
  }
}

async function check(configPath: string | undefined): Promise<number> {
  // A reload checks the new config here first: its modules are then stripped for the new workers.
  const strippedSources = prepareWorkerSources(null);
  try {
    const { filepath, config } = await loadConfig({ path: configPath });
    prepareConfigFolder(strippedSources, filepath);
    const plugins = new Set([...config.plugins, ...config.routes.flatMap((route) => route.plugins)].map((p) => p.plugin.name));
    process.stdout.write(
      `config OK: ${filepath}\n` +
        `  ${config.routes.length} route(s), ${Object.keys(config.upstreams).length} upstream(s), ` +
        `plugins: ${plugins.size ? [...plugins].join(', ') : 'none'}\n`,
    );
    return 0;
  } catch (error) {
    const code = (error as { code?: string }).code;
    process.stderr.write(`tollgate: ${code ? `[${code}] ` : ''}${(error as Error).message}\n`);
    return 1;
  }
}

// Exit explicitly: the primary leaves signal handlers and cluster state behind that would keep it alive.
process.exit(await main(process.argv.slice(2)));
