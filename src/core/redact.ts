/** A URL as it may be printed or logged: its password replaced (every host of a list kept). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (!u.password) return url;
    u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:***@');
  }
}

/**
 * An engine's error message as it may be shown, stored or logged: every single-quoted literal
 * (DuckDB, PostgreSQL and SQLite quote the offending value that way: `Could not convert
 * string 'x' to INT64`) becomes `'…'`, so that an event's contents never reach an error
 * response, a dead letter, a view's or backfill's error, or a log line. Errors name the
 * event's key and the field instead.
 */
export function redactValues(message: string): string {
  // PostgreSQL puts the value after a colon in double quotes (`invalid input syntax for type
  // integer: "abc"`); a column is named without the colon (`column "amount"`).
  return message.replace(/'(?:[^']|'')*'/g, "'…'").replace(/: "(?:[^"]|"")*"/g, ': "…"');
}

/** A JSON.parse message without the excerpt of the input that Node quotes (`"…" is not valid JSON`). */
export function redactJsonError(message: string): string {
  return message.replace(/,\s*(?:\.\.\.)?".*"(?:\.\.\.)? is not valid JSON$/s, ' (not valid JSON)');
}
