import { backendFor } from '../backends/registry.js';
import { declareView } from '../core/query.js';
import { Ajv, type ValidateFunction } from 'ajv';
import fs from 'node:fs';
import path from 'node:path';
import { SluiceError } from '../core/errors.js';
import { configSchema, type Config } from './schema.js';

/**
 * The only reader of configuration files and environment variables.
 *
 * Precedence, lowest first: defaults, the file (`--config FILE` or SLUICE_CONFIG), SLUICE_*
 * environment variables, command-line flags. An environment variable names a field in
 * upper snake case, nested fields joined by `_`: SLUICE_PORT, SLUICE_LOG_FSYNC,
 * SLUICE_LIMITS_BODY_BYTES, SLUICE_WORKER_MAX_ATTEMPTS.
 */

/** Variables read by the command-line client, not by the server's configuration. */
const CLIENT_VARIABLES = new Set(['SLUICE_CONFIG', 'SLUICE_KEY', 'SLUICE_URL']);
/** The standard OpenTelemetry variables read here (see otelEnv); the exporter reads its own (endpoint, headers, timeout). */
const OTEL_VARIABLES = [
  'OTEL_TRACES_EXPORTER',
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
  'OTEL_EXPORTER_OTLP_PROTOCOL',
  'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL',
  'OTEL_SDK_DISABLED',
  'OTEL_SERVICE_NAME',
] as const;
/** The test suite's own variables (SLUICE_TEST_NATS, SLUICE_TEST_POSTGRES): a shell that runs the tests also runs sluice. */
const TEST_VARIABLES = 'SLUICE_TEST_';

type Json = Record<string, unknown>;

/** Compiled at the first load, not at import: the client commands never load a configuration. */
let compiled: ValidateFunction<Config> | null = null;
const validator = (): ValidateFunction<Config> =>
  (compiled ??= new Ajv({ useDefaults: true, coerceTypes: true, allErrors: false, strict: false }).compile<Config>(configSchema));

function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
}

/** Every leaf field of the schema, as [path, ENV_NAME]. */
function leaves(schema: Json = configSchema as unknown as Json, prefix: string[] = []): [string[], string][] {
  const out: [string[], string][] = [];
  const props = (schema.properties ?? {}) as Record<string, Json>;
  for (const [k, sub] of Object.entries(props)) {
    const p = [...prefix, k];
    // An object without properties is a map (cors.tenants): one leaf, set in the file.
    if (sub.type === 'object' && sub.properties) out.push(...leaves(sub, p));
    else out.push([p, 'SLUICE_' + p.map(snake).join('_')]);
  }
  return out;
}

/**
 * Every environment variable sluice reads, for the documentation and its test: each field of
 * the schema (`field` dotted, `name` its variable), the client's variables, and the standard
 * OpenTelemetry ones.
 */
export function environmentVariables(): { field: string | null; name: string }[] {
  return [
    ...leaves().map(([p, name]) => ({ field: p.join('.'), name })),
    ...[...CLIENT_VARIABLES].map((name) => ({ field: null, name })),
    ...OTEL_VARIABLES.map((name) => ({ field: null, name })),
  ];
}

/**
 * How the user runs the CLI, for the commands that messages suggest: `npx sluice` when it was
 * started through npm (`npx sluice …` or `npm start` in a checkout, where npm sets
 * `npm_command`), else `sluice` (an installed binary on the PATH).
 */
export function cliCommand(env: NodeJS.ProcessEnv = process.env): string {
  return env.npm_command ? 'npx sluice' : 'sluice';
}

function setPath(target: Json, p: string[], value: unknown): void {
  let cur = target;
  for (const k of p.slice(0, -1)) {
    if (typeof cur[k] !== 'object' || cur[k] === null) cur[k] = {};
    cur = cur[k] as Json;
  }
  cur[p[p.length - 1]!] = value;
}

function merge(base: Json, over: Json): Json {
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && out[k] && typeof out[k] === 'object' ? merge(out[k] as Json, v as Json) : v;
  }
  return out;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

export interface LoadOptions {
  /** Values from command-line flags, already shaped like the config (e.g. { port: 9000 }). */
  flags?: Json;
  /** Path of a JSON config file. */
  file?: string;
  env?: NodeJS.ProcessEnv;
}

export function loadConfig(options: LoadOptions = {}): Readonly<Config> {
  const env = options.env ?? process.env;
  let merged: Json = {};
  const file = options.file ?? env.SLUICE_CONFIG;
  if (file) {
    let text: string;
    try {
      text = fs.readFileSync(path.resolve(file), 'utf8');
    } catch (e: unknown) {
      throw new SluiceError('SLUICE_ERR_CONFIG', `cannot read the config file ${file}: ${(e as Error).message}`, { field: 'config' });
    }
    try {
      merged = JSON.parse(text) as Json;
    } catch (e: unknown) {
      throw new SluiceError('SLUICE_ERR_CONFIG', `the config file ${file} is not valid JSON: ${(e as Error).message}`, { field: 'config' });
    }
  }
  const known = new Map(leaves().map(([p, name]) => [name, p]));
  const fromEnv: Json = {};
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('SLUICE_') || name.startsWith(TEST_VARIABLES) || CLIENT_VARIABLES.has(name) || value === undefined) continue;
    const p = known.get(name);
    if (!p) {
      throw new SluiceError('SLUICE_ERR_CONFIG', `unknown environment variable ${name}; known ones: ${[...known.keys()].join(', ')}`, { field: name });
    }
    // A list from the environment is comma-separated: SLUICE_CORS_ORIGINS=https://a.example,https://b.example.
    setPath(fromEnv, p, p.join('.') === 'cors.origins' ? value.split(',').map((o) => o.trim()).filter((o) => o.length > 0) : value);
  }
  merged = merge(merge(merge(merged, otelEnv(env)), fromEnv), options.flags ?? {});
  const validate = validator();
  if (!validate(merged)) {
    const err = validate.errors![0]!;
    const where = err.instancePath.replace(/^\//, '').replace(/\//g, '.');
    const extra = (err.params as { additionalProperty?: string }).additionalProperty;
    const field = extra ? (where ? `${where}.${extra}` : extra) : where || '(root)';
    const message = extra ? `unknown configuration key "${field}"` : `configuration key "${field}" ${err.message}`;
    throw new SluiceError('SLUICE_ERR_CONFIG', message, { field });
  }
  checkViews((merged as unknown as Config).views);
  checkBackends(merged as unknown as Config);
  return deepFreeze(merged as unknown as Config);
}

/** The backends' URLs name backends sluice has, for the port they are given to. */
function checkBackends(config: Config): void {
  backendFor('log', config.log.url);
  backendFor('store', config.store.url);
  backendFor('catalog', config.catalog.url);
}

/** Views are checked by the same parser as `PUT /v1/views/:name`; the message names the view and its key. */
function checkViews(views: Config['views']): void {
  const names = new Set<string>();
  views.forEach((v, i) => {
    const { name, ...def } = v;
    try {
      declareView(name, def);
    } catch (e: unknown) {
      const err = e as SluiceError;
      throw new SluiceError('SLUICE_ERR_CONFIG', `views[${i}] ("${name}"): ${err.message}`, { field: `views[${i}].${err.field ?? ''}` });
    }
    if (names.has(name)) throw new SluiceError('SLUICE_ERR_CONFIG', `views[${i}]: the view "${name}" is declared twice`, { field: `views[${i}].name` });
    names.add(name);
  });
}

/**
 * The standard OpenTelemetry variables, as configuration (below SLUICE_* in precedence).
 * Tracing is on when an OTLP endpoint or `OTEL_TRACES_EXPORTER=otlp` is set, and off with
 * `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. The exporter itself reads the
 * endpoint, headers and timeout variables, as every OpenTelemetry SDK does.
 */
function otelEnv(env: NodeJS.ProcessEnv): Json {
  const tracing: Json = {};
  const exporter = env.OTEL_TRACES_EXPORTER?.trim().toLowerCase();
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (exporter === 'otlp' || (endpoint && exporter === undefined)) tracing.enabled = true;
  if (exporter === 'none' || env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') tracing.enabled = false;
  if (exporter && exporter !== 'otlp' && exporter !== 'none') {
    throw new SluiceError('SLUICE_ERR_CONFIG', `OTEL_TRACES_EXPORTER="${exporter}" is not supported; use otlp or none`, { field: 'OTEL_TRACES_EXPORTER' });
  }
  const protocolVar = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = env[protocolVar]?.trim();
  if (protocol) {
    if (protocol !== 'http/protobuf' && protocol !== 'http/json') {
      throw new SluiceError('SLUICE_ERR_CONFIG', `${protocolVar}="${protocol}" is not supported; use http/protobuf or http/json`, { field: protocolVar });
    }
    tracing.protocol = protocol;
  }
  if (env.OTEL_SERVICE_NAME) tracing.serviceName = env.OTEL_SERVICE_NAME;
  return Object.keys(tracing).length ? { tracing } : {};
}

/** The configuration with defaults only (for tests and tools). */
export function defaultConfig(overrides: Json = {}): Readonly<Config> {
  return loadConfig({ env: {}, flags: overrides });
}
