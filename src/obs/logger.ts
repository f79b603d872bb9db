import { destination, pino, type Logger } from 'pino';

export type { Logger };

/**
 * JSON lines on stderr. Nothing per event: one line per state change (a lease taken or lost,
 * the store down and up again, a thread restarted).
 */
export function createLogger(level: string, name = 'sluice'): Logger {
  // Synchronous writes: lines are few (state changes), and a line written before the banner
  // must reach stderr before it, whatever thread wrote it.
  return pino({ name, level }, destination({ dest: 2, sync: true }));
}
