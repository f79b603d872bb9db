/**
 * Well-formed Unicode text (pure). A JavaScript string is UTF-16; JSON's `\ud800` escape can
 * put a lone surrogate in it, which is not a Unicode scalar value and has no UTF-8 encoding
 * (Node writes it as U+FFFD, DuckDB refuses it). sluice refuses such text wherever an event
 * carries it, naming the field, instead of storing something it cannot read back.
 */

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

// ES2024's String.prototype.isWellFormed (Node 20 has it; TypeScript's ES2022 lib does not).
const native = (String.prototype as { isWellFormed?: (this: string) => boolean }).isWellFormed;

/** True when `s` holds no lone surrogate (String.prototype.isWellFormed, ES2024). */
export const isWellFormed: (s: string) => boolean = native ? (s) => native.call(s) : (s) => !LONE_SURROGATE.test(s);

/** `s` with each lone surrogate replaced by U+FFFD, for messages and pointers only. */
export function toWellFormed(s: string): string {
  return s.replace(new RegExp(LONE_SURROGATE.source, 'g'), '\uFFFD');
}
