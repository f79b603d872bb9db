/**
 * Progress on stderr: a bar redrawn in place on a terminal (at most every 100 ms), a line every
 * few seconds otherwise (CI logs, pipes), through a StatusLine.
 */
export class Progress {
  private readonly started = Date.now();
  private lastDraw = 0;
  private readonly line = new StatusLine(process.stderr, Date.now, 3_000);

  constructor(private readonly totalBytes: number | null) {}

  update(bytes: number, events: number): void {
    const now = Date.now();
    if (now - this.lastDraw < 100) return;
    this.lastDraw = now;
    this.line.show(this.text(bytes, events, false));
  }

  note(message: string): void {
    this.line.note(message);
  }

  done(events: number): void {
    this.line.end(this.text(this.totalBytes ?? 0, events, true));
  }

  private text(bytes: number, events: number, final: boolean): string {
    const secs = Math.max(0.001, (Date.now() - this.started) / 1000);
    const rate = Math.round(events / secs).toLocaleString('en-US');
    const text = `${events.toLocaleString('en-US')} events  ${rate} ev/s`;
    if (!this.totalBytes) return text;
    const frac = final ? 1 : Math.min(1, bytes / this.totalBytes);
    const width = 24;
    const filled = Math.round(frac * width);
    const eta = frac > 0 && !final ? `  eta ${Math.round((secs / frac) * (1 - frac))}s` : '';
    return `[${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${Math.round(frac * 100)}%  ${text}${eta}`;
  }
}

/**
 * One status line of a long command (a backfill followed, a replay page by page): redrawn in
 * place on a terminal; elsewhere (a pipe, a CI log) written as a line of its own at most every
 * `everyMs` (LINE_EVERY_MS by default), so that a log gets a readable line now and then
 * instead of one long line of carriage returns. `end` writes the last state on a line of its
 * own in both cases; `note` a message of its own between states.
 */
export class StatusLine {
  private lastLine = -Infinity;
  private pending: string | null = null;
  private readonly tty: boolean;
  static readonly LINE_EVERY_MS = 5_000;

  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean },
    private readonly now: () => number = Date.now,
    private readonly everyMs = StatusLine.LINE_EVERY_MS,
  ) {
    this.tty = out.isTTY === true;
  }

  show(text: string): void {
    if (this.tty) {
      this.out.write(`\r\x1b[K${text}`);
      this.pending = text;
      return;
    }
    this.pending = text;
    if (this.now() - this.lastLine < this.everyMs) return;
    this.lastLine = this.now();
    this.out.write(`${text}\n`);
    this.pending = null;
  }

  /** A message on a line of its own (on a terminal, over the status, which the next `show` redraws). */
  note(message: string): void {
    this.out.write(this.tty ? `\r\x1b[K${message}\n` : `${message}\n`);
  }

  /** Ends the status: `text` (or the last state not yet written) on its own line. */
  end(text?: string): void {
    const last = text ?? this.pending;
    if (this.tty) this.out.write(last === null ? '\n' : `\r\x1b[K${last}\n`);
    else if (last !== null) this.out.write(`${last}\n`);
    this.pending = null;
  }
}
