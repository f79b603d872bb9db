import { it } from 'vitest';
import { killNineUnderLoad } from './kill-9-under-load.js';

/**
 * A producer sends 1M events in batches and retries every batch until it is acknowledged,
 * with the same idempotency keys. Meanwhile `sluice up` is killed with SIGKILL at random
 * moments and restarted. At the end, every acknowledged event is stored exactly once
 * (see kill-9-under-load.ts).
 */
it('crash.kill-9-at-random-moments-loses-and-doubles-nothing', () => killNineUnderLoad('sequential'), 600_000);
