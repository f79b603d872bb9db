import { Command, Option } from 'commander';
import { loadConfig } from '../config/load.js';
import { SluiceError } from '../core/errors.js';

/**
 * What the command groups share: the flags of clients (`--url`, `--key`) and of processes that
 * open the data (`--data-dir` and the other server flags), the configuration they make, and
 * the usage error.
 */

export type Opts = Record<string, string | string[] | boolean | undefined>;

export const DEFAULT_URL = 'http://127.0.0.1:8080';

export function usage(message: string): never {
  throw new SluiceError('SLUICE_ERR_CONFIG', message);
}

export function int(v: unknown, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) usage(`--${name} must be an integer, got "${String(v)}"`);
  return n;
}


/** --url and --key, with their environment variables. */
export function clientOptions(cmd: Command, keyWhat: string): Command {
  return cmd
    .addOption(new Option('--url <url>', 'the sluice server').env('SLUICE_URL').default(DEFAULT_URL))
    .addOption(new Option('--key <key>', keyWhat).env('SLUICE_KEY'));
}

/**
 * The flags of a process that opens the log, the store or the catalog; `listens: false` for
 * one that serves no HTTP (doctor), without --port and --host.
 */
export function serverOptions(cmd: Command, { listens = true } = {}): Command {
  cmd.option('--data-dir <dir>', 'where the embedded log, catalog and store live (SLUICE_DATA_DIR; default ./data)').option('--config <file>', 'a JSON configuration file (SLUICE_CONFIG)');
  if (listens) cmd.option('--port <n>', 'HTTP port (SLUICE_PORT; default 8080)').option('--host <host>', 'HTTP host (SLUICE_HOST; default 127.0.0.1)');
  return cmd
    .option('--partitions <n>', 'log partitions, embedded or NATS: every process of a deployment must agree (SLUICE_PARTITIONS; default 16)')
    .option('--fsync <mode>', "the embedded log's fsync: always|normal|off (SLUICE_LOG_FSYNC; default always; NATS: the server's sync_interval)")
    .option('--log <url>', 'embedded, or nats://HOST:4222[,HOST:4222…] (SLUICE_LOG_URL)')
    .option('--store <url>', 'embedded, or postgres://USER@HOST/DB[?schema=S] (SLUICE_STORE_URL)')
    .option('--catalog <url>', 'embedded, or postgres://USER@HOST/DB[?schema=S] (SLUICE_CATALOG_URL)');
}

/** The options of a command that opens the catalog only (tenants and keys): not the log's, the store's or the HTTP server's. */
export function catalogOptions(cmd: Command): Command {
  return cmd
    .option('--data-dir <dir>', 'where the embedded catalog lives, as the server (SLUICE_DATA_DIR; default ./data)')
    .option('--config <file>', 'a JSON configuration file (SLUICE_CONFIG)')
    .option('--catalog <url>', 'embedded, or postgres://USER@HOST/DB[?schema=S] (SLUICE_CATALOG_URL)');
}

export const SERVER_FLAGS = ['dataDir', 'config', 'port', 'host', 'partitions', 'fsync', 'log', 'store', 'catalog'] as const;

export function serverConfig(o: Opts) {
  const flags: Record<string, unknown> = {};
  if (o.dataDir !== undefined) flags.dataDir = o.dataDir;
  if (o.host !== undefined) flags.host = o.host;
  if (o.port !== undefined) flags.port = int(o.port, 'port');
  if (o.partitions !== undefined) flags.partitions = int(o.partitions, 'partitions');
  const log: Record<string, unknown> = {};
  if (o.fsync !== undefined) log.fsync = o.fsync;
  if (o.log !== undefined) log.url = o.log;
  if (Object.keys(log).length > 0) flags.log = log;
  if (o.store !== undefined) flags.store = { url: o.store };
  if (o.catalog !== undefined) flags.catalog = { url: o.catalog };
  return loadConfig({ flags, file: o.config as string | undefined });
}

export function target(o: Opts, keyWhat: string): { url: string; key: string } {
  if (!o.key) usage(`--key is required (or set SLUICE_KEY): ${keyWhat}`);
  return { url: o.url as string, key: o.key as string };
}

export function io(o: Opts, keyWhat: string) {
  return { ...target(o, keyWhat), json: o.json === true, out: process.stdout, err: process.stderr };
}

/** The keys each kind of command needs, as the messages say it. */
export const WRITE = 'a write key (sluice_w_…)';
export const READ = 'a read key (sluice_r_…)';
export const ADMIN = 'an admin key (sluice_a_…)';

/** Runs a command's work and hands its exit code to the program (see buildProgram). */
export type Act = <A extends unknown[]>(fn: (...a: A) => Promise<number>) => (...a: A) => Promise<void>;

const RANK: Record<string, number> = { cli: 3, env: 2, default: 1 };

/** A subcommand's options over its parent's, each from its strongest source (flag, then env, then default). */
export function merged(cmd: Command): Opts {
  const out: Opts = {};
  const from: Record<string, number> = {};
  for (const c of [cmd.parent!, cmd]) {
    for (const [k, v] of Object.entries(c.opts())) {
      const rank = RANK[c.getOptionValueSource(k) ?? 'cli'] ?? 3;
      if (v !== undefined && rank >= (from[k] ?? 0)) {
        out[k] = v as Opts[string];
        from[k] = rank;
      }
    }
  }
  return out;
}
