import { describe, expect, it } from 'vitest';
import { StatusLine } from '../../src/cli/progress.js';

/** A stream that keeps what is written, a terminal or not. */
function sink(isTTY: boolean): NodeJS.WritableStream & { isTTY: boolean; text: () => string } {
  const chunks: string[] = [];
  return { isTTY, write: (c: string) => chunks.push(c) > 0, text: () => chunks.join('') } as unknown as NodeJS.WritableStream & { isTTY: boolean; text: () => string };
}

describe('a long command’s status line', () => {
  it('cli.status-line-is-redrawn-on-a-terminal-and-a-line-every-five-seconds-in-a-pipe', () => {
    let now = 0;
    const pipe = sink(false);
    const inPipe = new StatusLine(pipe, () => now);
    // One update a second for twelve seconds: a line at 0 s, 5 s and 10 s, then the last state at the end.
    for (let s = 0; s < 12; s++, now += 1_000) inPipe.show(`${s * 10} of 120`);
    inPipe.end();
    expect(pipe.text()).toBe('0 of 120\n50 of 120\n100 of 120\n110 of 120\n');
    expect(pipe.text()).not.toContain('\r');

    const tty = sink(true);
    const onTerminal = new StatusLine(tty, () => now);
    onTerminal.show('1 of 2');
    onTerminal.show('2 of 2');
    onTerminal.end('done');
    expect(tty.text()).toBe('\r\x1b[K1 of 2\r\x1b[K2 of 2\r\x1b[Kdone\n');

    // A note is a line of its own, over the status on a terminal; a shorter interval is kept.
    const noted = sink(true);
    new StatusLine(noted, () => now).note('resent 3 batches');
    expect(noted.text()).toBe('\r\x1b[Kresent 3 batches\n');
    const every = sink(false);
    const fast = new StatusLine(every, () => now, 3_000);
    for (let s = 0; s < 7; s++, now += 1_000) fast.show(`${s}`);
    expect(every.text()).toBe('0\n3\n6\n');

    // Ended right after a line was written: nothing is written twice.
    const again = sink(false);
    const once = new StatusLine(again, () => now);
    once.show('all 3');
    once.end();
    expect(again.text()).toBe('all 3\n');
  });
});
