import { destination, pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

/** How log lines are written: JSON lines, or pino-pretty's one line per entry for a person at a terminal. */
export type LogFormat = 'json' | 'pretty';

/**
 * `logFormat` as configured (`auto`, `json`, `pretty`) made definite: `auto` is `pretty` when
 * stderr is a terminal and `json` otherwise (a pipe, a file, journald, a container's log
 * driver), as Fastify's documentation advises pino-pretty for development only. Resolved once,
 * on the main thread: a worker thread's stderr is never a terminal.
 */
export function resolveLogFormat(format: 'auto' | LogFormat, isTTY = process.stderr.isTTY === true): LogFormat {
  return format === 'auto' ? (isTTY ? 'pretty' : 'json') : format;
}

/**
 * Log lines on stderr: JSON lines (pino's format), or pretty ones. Nothing per event: one line
 * per state change (a lease taken or lost, the store down and up again, a thread restarted).
 */
export function createLogger(level: string, name = 'sluice', format: LogFormat = 'json'): Logger {
  // Synchronous writes: lines are few (state changes), and a line written before the banner
  // must reach stderr before it, whatever thread wrote it.
  const out = format === 'pretty' ? pretty({ destination: 2, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', singleLine: true }) : destination({ dest: 2, sync: true });
  return pino({ name, level }, out);
}
