import { destination, pino, type Logger } from 'pino';

export type { Logger };

/**
 * JSON lines on stderr. Nothing per event: one line per state change (a lease taken or lost,
 * the store down and up again, a thread restarted).
 */
export function createLogger(level: string, name = 'sluice'): Logger {
  return pino({ name, level }, destination(2));
}
