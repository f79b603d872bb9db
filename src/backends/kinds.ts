import { SluiceError } from '../core/errors.js';

/**
 * Which backend a configured URL names, for each port: `embedded` (the files in the data
 * directory), `nats://…` for the log, `postgres://…` for the store and the catalog. The configuration is
 * checked with it when it is loaded, so an unknown URL stops the start with its field named.
 */
export type BackendKind = 'embedded' | 'nats' | 'postgres';

export function kindOf(url: string, port: 'log' | 'store' | 'catalog'): BackendKind {
  if (url === 'embedded') return 'embedded';
  const scheme = url.split(':', 1)[0]!.toLowerCase();
  if (port === 'log' && (scheme === 'nats' || scheme === 'tls')) return 'nats';
  if ((port === 'store' || port === 'catalog') && (scheme === 'postgres' || scheme === 'postgresql')) return 'postgres';
  const expected = { log: 'embedded or nats://host:4222[,host2:4222]', store: 'embedded or postgres://user@host:5432/db', catalog: 'embedded or postgres://user@host:5432/db' }[port];
  throw new SluiceError('SLUICE_ERR_CONFIG', `--${port} ${JSON.stringify(url)} is not a backend sluice knows; expected ${expected}`, { field: `${port}.url` });
}
