import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { SluiceError } from '../core/errors.js';
import { callJson } from './http-client.js';

/**
 * `sluice pipeline show|push|test|versions`: a tenant's transform pipeline, through a running
 * server's HTTP API with an admin key (--key or SLUICE_KEY; --url or SLUICE_URL).
 *
 *   sluice pipeline show [--version N]              the document ({"steps": [...]}) on stdout
 *   sluice pipeline push FILE.json [--expected-version N | --no-activate]
 *   sluice pipeline test [FILE.json | --version N; default the live one] (--events EVENTS.json | --sample TYPE [--last N])
 *   sluice pipeline versions [--limit N]
 *
 * Exit status: 0 done; 1 the server refused (the message says why); 2 a usage error.
 */
export const PIPELINE_USAGE = `  sluice pipeline show [--version N] | versions [--limit N]
  sluice pipeline push FILE.json [--expected-version N | --no-activate]
  sluice pipeline test [FILE.json | --version N; default the live one] (--events EVENTS.json | --sample TYPE [--last N])
      The tenant's transform pipeline (admin key): show prints the live document, push writes a
      new version and makes it live (compare-and-set with --expected-version), or with
      --no-activate stores it without making it live (a candidate to take live with a rollout),
      test runs a pipeline (the live one unless FILE.json or --version names one) over events
      and writes nothing.
  sluice pipeline show|versions|push FILE.json [--no-activate] --global [--data-dir DIR | --catalog URL]
      The operator pipeline, run over every tenant's events before the tenant's own steps, on
      the catalog (roll a version out over tenants: sluice rollout create FILE --global).`;

interface Io {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

function usage(message: string): never {
  throw new SluiceError('SLUICE_ERR_CONFIG', `${message}\n\n${PIPELINE_USAGE}`);
}

function readJson(file: string, what: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e: unknown) {
    throw new SluiceError('SLUICE_ERR_CONFIG', `cannot read the ${what} ${file}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e: unknown) {
    throw new SluiceError('SLUICE_ERR_CONFIG', `the ${what} ${file} is not JSON: ${(e as Error).message}`);
  }
}

function int(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) usage(`--${name} must be a whole number, got "${v}"`);
  return n;
}

interface Version {
  version: number;
  steps: unknown[];
  created_at: string | null;
  created_by: string | null;
}

interface TestResult {
  outcome: string;
  reason?: string;
  message?: string;
  changed: string[];
  output: unknown;
}

export async function pipelineCommand(argv: string[], io: Io = { out: process.stdout, err: process.stderr }): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    strict: true,
    options: {
      key: { type: 'string' },
      url: { type: 'string' },
      json: { type: 'boolean' },
      version: { type: 'string' },
      'expected-version': { type: 'string' },
      events: { type: 'string' },
      sample: { type: 'string' },
      last: { type: 'string' },
      limit: { type: 'string' },
      'no-activate': { type: 'boolean' },
    },
  });
  const key = values.key ?? process.env.SLUICE_KEY;
  if (!key) usage('--key is required (an admin key; or set SLUICE_KEY)');
  const base = (values.url ?? process.env.SLUICE_URL ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
  const call = async <T>(method: string, path: string, payload?: unknown): Promise<T> => (await callJson(method, `${base}${path}`, key, payload, { maxAttempts: 3 })).body as T;
  const print = (value: unknown, human: () => string) => io.out.write((values.json ? JSON.stringify(value, null, 2) : human()) + '\n');

  switch (sub) {
    case 'show': {
      if (positionals.length > 0) usage('show takes no arguments');
      const n = int(values.version, 'version');
      const v = await call<Version>('GET', n === undefined ? '/v1/pipeline' : `/v1/pipeline/versions/${n}`);
      if (!values.json) io.err.write(v.version === 0 ? 'no pipeline yet (version 0)\n' : `version ${v.version}, written by ${v.created_by} at ${v.created_at}\n`);
      // The document alone on stdout, so that `show > p.json`, an edit and `push p.json` round-trip.
      io.out.write(JSON.stringify(values.json ? v : { steps: v.steps }, null, 2) + '\n');
      return 0;
    }
    case 'push': {
      const file = positionals[0] ?? usage('name the pipeline file: sluice pipeline push FILE.json');
      const doc = readJson(file, 'pipeline');
      const steps = doc && typeof doc === 'object' && !Array.isArray(doc) ? (doc as { steps?: unknown }).steps : undefined;
      const expected = int(values['expected-version'], 'expected-version');
      if (values['no-activate']) {
        if (expected !== undefined) usage('--expected-version checks the live version, which --no-activate leaves alone: give one or the other');
        const v = await call<Version>('POST', '/v1/pipeline/versions', { steps });
        print(v, () => `stored: version ${v.version} (${v.steps.length} steps), not live; roll it out with sluice rollout create (a rollout of {"change": {"pipeline_version": ${v.version}}})`);
        return 0;
      }
      const v = await call<Version>('PUT', '/v1/pipeline', { steps, ...(expected === undefined ? {} : { expected_version: expected }) });
      print(v, () => `pushed: version ${v.version} (${v.steps.length} steps)`);
      return 0;
    }
    case 'test': {
      const body: Record<string, unknown> = {};
      const version = int(values.version, 'version');
      if (positionals[0] !== undefined && version !== undefined) usage('give a pipeline file or --version, not both');
      if (positionals[0] !== undefined) body.pipeline = readJson(positionals[0], 'pipeline');
      else if (version !== undefined) body.version = version;
      else {
        // Neither: the live pipeline, as the workers run it.
        const live = await call<{ version: number; steps: unknown[] }>('GET', '/v1/pipeline');
        if (live.version === 0) usage('the tenant has no pipeline yet: give the pipeline to test, a FILE.json (or --version N)');
        body.version = live.version;
      }
      if ((values.events === undefined) === (values.sample === undefined)) usage('give --events EVENTS.json or --sample TYPE');
      if (values.events !== undefined) body.events = readJson(values.events, 'events');
      else body.sample = { type: values.sample, last: int(values.last, 'last') ?? 100 };
      const r = await call<{ results: TestResult[] }>('POST', '/v1/pipeline/test', body);
      print(r, () => {
        const counts = new Map<string, number>();
        for (const x of r.results) counts.set(x.outcome, (counts.get(x.outcome) ?? 0) + 1);
        const lines = r.results.map((x, i) => {
          const why = x.outcome === 'dead_lettered' ? ` ${x.reason}: ${x.message}` : '';
          const changed = x.changed.length ? ` changed ${x.changed.join(', ')}` : '';
          return `  #${i} ${x.outcome}${why}${changed}`;
        });
        return [`${r.results.length} events: ${[...counts].map(([k, n]) => `${n} ${k}`).join(', ') || 'none'}`, ...lines].join('\n');
      });
      return 0;
    }
    case 'versions': {
      const limit = int(values.limit, 'limit');
      const r = await call<{ versions: { version: number; live: boolean; step_count: number; created_at: string; created_by: string }[] }>('GET', `/v1/pipeline/versions${limit ? `?limit=${limit}` : ''}`);
      print(r, () => (r.versions.length === 0 ? 'no pipeline yet' : ['VERSION\tLIVE\tSTEPS\tCREATED\tBY', ...r.versions.map((v) => `${v.version}\t${v.live ? 'live' : 'no'}\t${v.step_count}\t${v.created_at}\t${v.created_by}`)].join('\n')));
      return 0;
    }
    default:
      usage(sub === undefined ? 'sluice pipeline needs a subcommand' : `unknown subcommand "pipeline ${sub}"`);
  }
}
