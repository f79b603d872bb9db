import { Option, type Command } from 'commander';
import { keyIdOf } from '../backends/api-keys.js';
import { openCatalog } from '../backends/registry.js';
import type { KeyScope, TenantQuota, TenantSettings, UnknownTypes } from '../ports/catalog.js';
import { tenantStateCommand } from './admin.js';
import { ADMIN, catalogOptions, clientOptions, int, io, serverConfig, usage, type Act, type Opts } from './grammar.js';

/** `sluice tenant create|set|pause|resume` and `sluice key create|revoke`: they open the catalog, or call a running server. */
export function addTenantCommands(program: Command, act: Act): void {
  const tenant = program.command('tenant').description("create tenants, change their settings, pause or resume them");
  catalogOptions(tenant.command('create').description("create a tenant and print its write, read and admin keys (once); works while up runs").argument('<name>'))
    .option('--json', 'JSON output')
    .action(
      act(async (name: string, o: Opts) => {
        const catalog = await openCatalog(serverConfig(o));
        try {
          const t = await catalog.createTenant(name);
          if (o.json) process.stdout.write(JSON.stringify({ tenant: t.tenant, write_key: t.writeKey, read_key: t.readKey, admin_key: t.adminKey }) + '\n');
          else process.stdout.write(`tenant:    ${t.tenant}\nwrite key: ${t.writeKey}\nread key:  ${t.readKey}\nadmin key: ${t.adminKey}\n(the keys are shown this once)\n`);
        } finally {
          await catalog.close();
        }
        return 0;
      }),
    );
  catalogOptions(tenant.command('set').description("change a tenant's settings: unknown event types and quotas (0 = unlimited, default = the configured default)").argument('<name>'))
    .option('--unknown-types <what>', 'accept|dead-letter|reject')
    .option('--events-per-second <n>', 'quota')
    .option('--bytes-per-second <n>', 'quota')
    .option('--backlog <n>', 'events accepted and not yet processed')
    .option('--json', 'JSON output')
    .action(act((name: string, o: Opts) => tenantSet(name, o)));
  for (const sub of ['pause', 'resume'] as const) {
    clientOptions(
      tenant.command(sub).description(sub === 'pause' ? "hold the admin key's tenant's events" : 'let them flow again and replay what was held'),
      ADMIN,
    )
      .option('--reason <text>', 'why (kept in the audit log)')
      .option('--json', 'JSON output')
      .action(act((o: Opts) => tenantStateCommand(io(o, ADMIN), sub, o.reason as string | undefined)));
  }

  const key = program.command('key').description('issue or revoke keys');
  catalogOptions(key.command('create').description('issue another key for a tenant (a schema key publishes the schemas of its team)').argument('<tenant>'))
    .addOption(new Option('--scope <scope>', 'the key').choices(['write', 'read', 'admin', 'schema']).default('write'))
    .option('--team <team>', 'the team of a schema key')
    .option('--json', 'JSON output')
    .action(
      act(async (tenantName: string, o: Opts) => {
        const catalog = await openCatalog(serverConfig(o));
        try {
          const k = await catalog.createKey(tenantName, o.scope as KeyScope, o.team as string | undefined);
          process.stdout.write(o.json ? JSON.stringify({ tenant: tenantName, scope: o.scope, team: o.team ?? null, key: k }) + '\n' : `${o.scope as string} key: ${k}\n(shown this once)\n`);
        } finally {
          await catalog.close();
        }
        return 0;
      }),
    );
  catalogOptions(key.command('revoke').description('revoke a key by its id (sluice_w_<id>_…) or the whole key; a running server refuses it within 5 s').argument('<key-id>')).action(
    act(async (given: string, o: Opts) => {
      const id = keyIdOf(given);
      const catalog = await openCatalog(serverConfig(o));
      try {
        if (!(await catalog.revokeKey(id))) usage(`no key with the id ${id}`);
        process.stdout.write(`key ${id} revoked (a running server refuses it within 5 s)\n`);
      } finally {
        await catalog.close();
      }
      return 0;
    }),
  );
}

async function tenantSet(name: string, o: Opts): Promise<number> {
  const patch: Partial<TenantSettings> = {};
  const unknownTypes = o.unknownTypes as string | undefined;
  if (unknownTypes !== undefined) {
    if (!['accept', 'dead-letter', 'reject'].includes(unknownTypes)) usage('--unknown-types must be accept, dead-letter or reject');
    patch.unknownTypes = unknownTypes as UnknownTypes;
  }
  const quota: TenantQuota = {};
  for (const [flag, opt, k] of [['events-per-second', 'eventsPerSecond', 'eventsPerSecond'], ['bytes-per-second', 'bytesPerSecond', 'bytesPerSecond'], ['backlog', 'backlog', 'backlog']] as const) {
    const v = o[opt] as string | undefined;
    if (v === undefined) continue;
    // "default" puts the configured default back.
    const n = v === 'default' ? undefined : int(v, flag);
    if (n !== undefined && n < 0) usage(`--${flag} must be 0 (unlimited) or more, or "default"`);
    quota[k] = n;
  }
  if (patch.unknownTypes === undefined && Object.keys(quota).length === 0) {
    usage('tenant set: name a setting to change, e.g. --unknown-types dead-letter or --events-per-second 5000');
  }
  const catalog = await openCatalog(serverConfig(o));
  try {
    if (Object.keys(quota).length > 0) {
      const before = await catalog.settings(name);
      patch.quota = { ...before.quota, ...quota };
      // What the operator sets here is also the ceiling the tenant's own admin key cannot raise
      // (PATCH /v1/tenant); "default" lifts the ceiling with the quota, 0 sets none.
      patch.quotaCeiling = { ...before.quotaCeiling, ...quota };
    }
    const settings = await catalog.updateSettings(name, patch, 'cli');
    const q = settings.quota;
    const show = (v: number | undefined) => (v === undefined ? 'default' : v === 0 ? 'unlimited' : String(v));
    process.stdout.write(
      o.json
        ? JSON.stringify({ tenant: name, settings }) + '\n'
        : `tenant ${name}: unknown types → ${settings.unknownTypes}; events/s ${show(q.eventsPerSecond)}, bytes/s ${show(q.bytesPerSecond)}, backlog ${show(q.backlog)}\n`,
    );
  } finally {
    await catalog.close();
  }
  return 0;
}
