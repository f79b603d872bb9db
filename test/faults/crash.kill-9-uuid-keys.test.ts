import { it } from 'vitest';
import { killNineUnderLoad } from './kill-9-under-load.js';

/**
 * The kill -9 test with random idempotency keys (a UUID per event, as SDKs send), and a key
 * ledger that rewrites its keys as a sorted run every 5,000 keys and merges runs, so that the
 * kills land in the ledger's background work too: a batch resent across a crash is answered
 * `duplicate` for the keys the crashed process had appended, and every acknowledged event is
 * stored exactly once.
 */
it('crash.kill-9-with-uuid-keys-loses-and-doubles-nothing', () => killNineUnderLoad('uuid', { SLUICE_LOG_LEDGER_RUN_KEYS: '5000' }), 600_000);
