import { EpochWatch } from '../core/epoch.js';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { SluiceError } from '../core/errors.js';
import { escapePointer } from '../core/event.js';
import type { Catalog, TenantSettings } from '../ports/catalog.js';
import type { SchemaStore, SchemaVersion } from '../ports/schemas.js';
import { checkPatterns, checkUniqueItems, linearRegExp } from './patterns.js';

/**
 * The schema registry as ingest sees it: per tenant, its settings and a compiled validator
 * per event type, cached. The cache is dropped as a whole when the catalog's epoch changes
 * (any publish or settings change, in any process), checked at most every `refreshMs`; a
 * publish through this process drops it at once. So a stale "no schema" answer lives at
 * most `refreshMs`, and a compiled schema is never served past its replacement for longer.
 */

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

/** A schema may not be larger than this, as JSON. */
export const MAX_SCHEMA_BYTES = 65_536;
const MAX_TYPES_CACHED = 10_000;

export interface SchemaViolation {
  /** JSON pointer into the event (`/properties/...`). */
  path: string;
  message: string;
}

export interface CompiledSchema {
  version: number;
  owner: string;
  /** The first violation of `properties`, or null when they conform. */
  check(properties: unknown): SchemaViolation | null;
}

interface TenantCache {
  settings: TenantSettings;
  types: Map<string, CompiledSchema | null>;
  /** Per type, the schema versions a rollout holds back from ingest (see heldVersions). */
  held: Map<string, Set<number>>;
}

/** The version ingest enforces among `versions` of one type: the newest that is not `held` (see heldVersions); null when every one is. */
export function enforcedVersion(versions: readonly number[], held: ReadonlySet<number> | undefined): number | null {
  let newest: number | null = null;
  for (const v of versions) if (!held?.has(v) && (newest === null || v > newest)) newest = v;
  return newest;
}

/**
 * The version of `type` ingest enforces, from its newest (`latest`) and the versions a rollout
 * holds (heldVersions): `latest` unless it is held, else the newest not held (its versions are
 * read only then); null when there is none.
 */
export async function enforcedSchema(schemas: SchemaStore, tenant: string, type: string, latest: SchemaVersion | null, held: ReadonlySet<number> | undefined): Promise<SchemaVersion | null> {
  if (!latest || !held?.has(latest.version)) return latest;
  const versions = await schemas.versions(tenant, type);
  const enforced = enforcedVersion(versions.map((v) => v.version), held);
  return versions.find((v) => v.version === enforced) ?? null;
}

/**
 * The schema versions that ingest does not enforce yet: a version under a rollout of its
 * enforcement, or whose rollout ended without being promoted (rolled back, aborted), unless
 * a later rollout of it was promoted. The rollout enforces it in the workers, for its cohort.
 * Read from the rollouts' records without knowing more of them than their change.
 */
export function heldVersions(rollouts: readonly { kind: string; state: string; doc: unknown }[]): Map<string, Set<number>> {
  const promoted = new Set<string>();
  const held = new Map<string, Set<number>>();
  const changeOf = (doc: unknown) => (doc as { change?: { schema?: { type?: unknown; version?: unknown } } } | null)?.change?.schema;
  for (const r of rollouts) {
    const c = changeOf(r.doc);
    if (r.kind === 'schema' && r.state === 'promoted' && c) promoted.add(`${String(c.type)}\u0000${String(c.version)}`);
  }
  for (const r of rollouts) {
    const c = changeOf(r.doc);
    if (r.kind !== 'schema' || r.state === 'promoted' || !c || typeof c.type !== 'string' || typeof c.version !== 'number') continue;
    if (promoted.has(`${c.type}\u0000${c.version}`)) continue;
    let set = held.get(c.type);
    if (!set) held.set(c.type, (set = new Set()));
    set.add(c.version);
  }
  return held;
}

export function newAjv(): Ajv2020 {
  // strict: unknown keywords in a published schema are errors, not silently ignored rules.
  // code.regExp: every pattern runs on RE2 (linear time), never on the backtracking engine.
  const ajv = new Ajv2020({ code: { regExp: linearRegExp }, allErrors: false, strictSchema: true, strictNumbers: true, strictTypes: false, strictTuples: false, strictRequired: false, allowUnionTypes: true, validateFormats: true });
  addFormats(ajv);
  // ajv-formats' "url" is a regular expression whose time grows with the square of the input
  // ("http://" and 32,000 colons: 0.56 s an event); WHATWG URL parsing answers in linear time.
  ajv.addFormat('url', { type: 'string', validate: isUrl });
  return ajv;
}

/**
 * The "url" format: an absolute URL (WHATWG parsing) whose scheme is http, https or ftp, with
 * no whitespace, control characters or characters RFC 3986 never allows unescaped (<, >, ", {,
 * }, |, \\, ^, `), which WHATWG parsing would escape and accept. Not ajv-formats' expression:
 * that one also refuses private and loopback hosts, and its time grows with the square of the
 * input. Both checks here are linear.
 */
function isUrl(s: string): boolean {
  if (!/^(?:https?|ftp):\/\//i.test(s) || /[\s\u0000-\u001f\u007f<>"{}|\\^`]/.test(s)) return false;
  try {
    const u = new URL(s);
    return u.hostname.length > 0;
  } catch {
    return false;
  }
}


/** Ajv's first error as a JSON pointer into the event and a sentence. */
export function violationOf(e: ErrorObject): SchemaViolation {
  let path = `/properties${e.instancePath}`;
  const params = e.params as Record<string, unknown>;
  if (e.keyword === 'required' && typeof params.missingProperty === 'string') path += `/${escapePointer(params.missingProperty)}`;
  if (e.keyword === 'additionalProperties' && typeof params.additionalProperty === 'string') {
    return { path: `${path}/${escapePointer(params.additionalProperty)}`, message: `property "${params.additionalProperty}" is not allowed by the schema` };
  }
  // Ajv's "must have required property 'x'" said of the missing property itself: `"x" is required`.
  if (e.keyword === 'required' && typeof params.missingProperty === 'string') return { path, message: `"${path.slice('/properties/'.length)}" is required by the schema` };
  const subject = path === '/properties' ? 'properties' : `"${path.slice('/properties/'.length)}"`;
  let message = `${subject} ${e.message ?? 'is invalid'}`;
  if (e.keyword === 'enum' && Array.isArray(params.allowedValues)) message += `: ${params.allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
  return { path, message };
}

/** How deep a schema may nest (objects and arrays; an event nests at most 32 levels, which a schema describes in about 64): deeper, it is refused before anything recurses into it. */
export const MAX_SCHEMA_DEPTH = 128;

/**
 * How many objects (subschemas, and the objects keywords hold) a schema may have. Ajv turns
 * each into code when it compiles, about 1-3 ms of the thread that serves every tenant apiece on
 * two cores: 1,400 (700 properties of two `anyOf` branches, 61 KB) took 4.7 s per publish,
 * 503 for every tenant meanwhile. 500 is a type with a few hundred properties.
 */
export const MAX_SCHEMA_OBJECTS = 500;

/** The nesting depth of a JSON value and how many objects it holds, counted without recursion; stops counting past either cap. */
function shapeOf(value: unknown, maxDepth: number, maxObjects: number): { depth: number; objects: number } {
  let deepest = 0;
  let objects = 0;
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    deepest = Math.max(deepest, depth);
    if (!Array.isArray(v)) objects++;
    if (deepest > maxDepth || objects > maxObjects) break;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1]);
  }
  return { depth: deepest, objects };
}

/**
 * Compiles a schema, or explains why it cannot be one (400, naming the problem).
 * `publishing`: the bounds added after versions were first stored (nesting, uniqueItems) are
 * checked only for a version being published; a stored version that predates them compiles as
 * it always did (refusing it at ingest would refuse every event of its type, and the previous
 * version of a publish is compiled too).
 */
export function compile(ajv: Ajv2020, schema: unknown, version: number, owner: string, publishing = false): CompiledSchema {
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) {
    throw new SluiceError('SLUICE_ERR_INVALID_BODY', '"schema" must be a JSON Schema object', { field: 'schema' });
  }
  // Before anything walks it recursively (JSON.stringify, the pattern check, Ajv).
  const shape = publishing ? shapeOf(schema, MAX_SCHEMA_DEPTH, MAX_SCHEMA_OBJECTS) : null;
  if (shape && shape.depth > MAX_SCHEMA_DEPTH) {
    throw new SluiceError('SLUICE_ERR_INVALID_BODY', `the schema nests deeper than ${MAX_SCHEMA_DEPTH} levels`, { field: 'schema' });
  }
  if (shape && shape.objects > MAX_SCHEMA_OBJECTS) {
    throw new SluiceError(
      'SLUICE_ERR_INVALID_BODY',
      `the schema holds more than ${MAX_SCHEMA_OBJECTS} objects (subschemas and keyword objects): each is compiled into code; split the type, or describe repeated properties once (patternProperties, additionalProperties)`,
      { field: 'schema' },
    );
  }
  if (Buffer.byteLength(JSON.stringify(schema)) > MAX_SCHEMA_BYTES) {
    throw new SluiceError('SLUICE_ERR_INVALID_BODY', `the schema is larger than ${MAX_SCHEMA_BYTES} bytes`, { field: 'schema' });
  }
  const s = schema as Record<string, unknown>;
  if (s.$schema !== undefined && s.$schema !== 'https://json-schema.org/draft/2020-12/schema') {
    throw new SluiceError('SLUICE_ERR_INVALID_BODY', 'schemas are JSON Schema 2020-12: omit "$schema" or set it to https://json-schema.org/draft/2020-12/schema', { field: 'schema.$schema' });
  }
  checkPatterns(s);
  if (publishing) checkUniqueItems(s);
  let fn: ValidateFunction;
  try {
    // Compiled without an $id, so that versions of one type never collide in Ajv's cache.
    const { $id: _ignored, ...rest } = s;
    fn = ajv.compile(rest);
  } catch (e: unknown) {
    throw new SluiceError('SLUICE_ERR_INVALID_BODY', `the schema is not valid JSON Schema 2020-12: ${(e as Error).message}`, { field: 'schema' });
  }
  return {
    version,
    owner,
    check(properties) {
      if (fn(properties)) return null;
      const first = fn.errors?.[0];
      return first ? violationOf(first) : { path: '/properties', message: 'properties do not match the schema' };
    },
  };
}

export class SchemaRegistry {
  private ajv = newAjv();
  private readonly watch: EpochWatch;
  private readonly tenants = new Map<string, TenantCache>();

  constructor(
    private readonly catalog: Catalog,
    private readonly opts: { refreshMs: number; now?: () => number } = { refreshMs: 1_000 },
  ) {
    this.watch = new EpochWatch(() => catalog.epoch(), opts, () => this.drop());
  }

  /** Drops everything cached (after a publish or a settings change in this process). */
  invalidate(): void {
    this.drop();
    this.watch.expire();
  }

  private drop(): void {
    this.tenants.clear();
    this.ajv = newAjv();
  }

  private refresh(): Promise<void> {
    return this.watch.check();
  }

  private async tenant(tenant: string): Promise<TenantCache> {
    await this.refresh();
    let t = this.tenants.get(tenant);
    if (!t) {
      t = { settings: await this.catalog.settings(tenant), types: new Map(), held: heldVersions(await this.catalog.rollouts.list(tenant)) };
      this.tenants.set(tenant, t);
    }
    return t;
  }

  async settings(tenant: string): Promise<TenantSettings> {
    return (await this.tenant(tenant)).settings;
  }

  /** The compiled schemas of `types` (null for a type without one), looked up together. */
  async schemasFor(tenant: string, types: Iterable<string>): Promise<Map<string, CompiledSchema | null>> {
    const t = await this.tenant(tenant);
    const out = new Map<string, CompiledSchema | null>();
    for (const type of types) {
      if (out.has(type)) continue;
      let c = t.types.get(type);
      if (c === undefined) {
        const enforced = await enforcedSchema(this.catalog.schemas, tenant, type, await this.catalog.schemas.latest(tenant, type), t.held.get(type));
        c = enforced ? compile(this.ajv, enforced.schema, enforced.version, enforced.owner) : null;
        // A flood of made-up types must not grow the cache without bound.
        if (t.types.size >= MAX_TYPES_CACHED) t.types.clear();
        t.types.set(type, c);
      }
      out.set(type, c);
    }
    return out;
  }
}
