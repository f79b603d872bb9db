import { coerceError } from '../core/errors.js';
import type { Logger } from '../obs/logger.js';
import type { Catalog } from '../ports/catalog.js';
import type { Store } from '../ports/store.js';
import { typedBackfillName } from '../ports/typed-columns.js';
import type { BackfillRunner } from './backfill.js';

/**
 * Keeps each store's typed columns (ports/typed-columns.ts) in step with the schemas and with
 * what raw queries read: the top-level names of the newest schema version's `properties`, and
 * the undeclared properties the store promoted by how often queries read them (PROMOTION), per
 * tenant and type, are declared to the store, and a set whose columns changed, or whose build
 * a stopped process left unfinished, gets its backfill started. Called at start and then
 * periodically (a schema published or a property promoted meanwhile is picked up within one
 * period).
 *
 * A property whose declared type changes keeps its columns as they are: they hold the value's
 * text and its number whatever the schema says, so only a new or removed name rebuilds.
 */
export class TypedColumnBuilds {
  constructor(
    private readonly store: Store,
    private readonly runner: BackfillRunner,
    private readonly opts: { logger?: Logger; now?: () => number } = {},
  ) {}

  async sync(catalog: Catalog): Promise<void> {
    const typed = this.store.typedColumns;
    if (!typed) return;
    const running = new Set((await this.store.backfills.list()).filter((b) => b.status === 'running').map((b) => b.id));
    for (const { name: tenant } of await catalog.listTenants()) {
      let declared: Map<string, string[]>;
      let promoted: Map<string, string[]>;
      try {
        const schemas = await catalog.schemas.list(tenant);
        // A schema's properties in name order, then the promoted ones: past MAX_TYPED_PROPERTIES, a promoted name never takes a declared one's column.
        declared = new Map(schemas.map((s) => [s.type, declaredProperties(s.schema).sort()]));
        promoted = (await typed.promoted?.(tenant, this.opts.now?.() ?? Date.now())) ?? new Map<string, string[]>();
        for (const [type, names] of promoted) declared.set(type, [...new Set([...(declared.get(type) ?? []), ...names])]);
        // Types with neither a schema nor a promoted property keep no columns.
        for (const s of await typed.list(tenant)) if (!declared.has(s.type)) declared.set(s.type, []);
      } catch (e: unknown) {
        // One tenant's catalog or promotions unreadable: the others are declared all the same.
        this.opts.logger?.warn({ tenant, err: coerceError(e).message }, 'could not read the schemas or promotions for typed columns');
        continue;
      }
      for (const [type, properties] of declared) {
        try {
          const { changed } = await typed.declare(tenant, type, properties);
          const building = (await typed.list(tenant)).find((s) => s.type === type && s.status === 'building');
          if (!building || (!changed && building.build !== null && running.has(building.build))) continue;
          this.opts.logger?.info({ tenant, type, properties: building.properties.length, promoted: promoted.get(type) ?? [] }, 'typed columns declared; building them from raw events');
          await this.runner.start({ view: typedBackfillName(type), tenant, from: null, to: null, rate: 0 });
        } catch (e: unknown) {
          this.opts.logger?.warn({ tenant, type, err: coerceError(e).message }, 'could not declare or build typed columns');
        }
      }
    }
  }
}

/** The top-level property names a JSON Schema declares (`properties`), in any order. */
export function declaredProperties(schema: Record<string, unknown>): string[] {
  const p = schema.properties;
  return p !== null && typeof p === 'object' && !Array.isArray(p) ? Object.keys(p) : [];
}
