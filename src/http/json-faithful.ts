import { SluiceError } from '../core/errors.js';
import { isWellFormed, toWellFormed } from '../core/text.js';

/**
 * What JSON text can say that a JavaScript value cannot keep, found with the field's JSON
 * pointer (RFC 6901) so that the producer is told which of its own fields to fix:
 *
 * - a string (value or key) holding a lone UTF-16 surrogate (`"\ud800"`): not Unicode text,
 *   and not storable as UTF-8 in the log, DuckDB or PostgreSQL;
 * - an integer literal (no fraction, no exponent) beyond ±(2^53 − 1), the range RFC 8259 §6
 *   calls interoperable: JSON.parse would round it (`1234567890123456789` → `…768`), changing
 *   an id silently and letting two distinct events hash alike;
 * - a number outside a double's range: `1e400` parses to Infinity (written back as `null`),
 *   `1e-400` to 0.
 *
 * Numbers with a fraction or an exponent are IEEE 754 doubles, as in every JSON reader.
 * The scan runs only when a cheap test of the text says one of these may be present.
 */

// A surrogate escape, or a number token (after ':', '[' or ',') of 16+ digits or with a
// 3-digit exponent; UUIDs and hex ids in strings ("5e123") do not start a scan.
const MAYBE = /\\u[dD][89a-fA-F]|[:[,]\s*-?(?:\d{16}|\d+(?:\.\d+)?[eE][+-]?\d{3})/;
const NUMBER = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/** A problem found in the text: the pointer to the field, and what to do about it. */
export interface Unfaithful {
  pointer: string;
  kind: 'unicode' | 'number';
  message: string;
}

function escape(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

/**
 * Scans valid JSON text (JSON.parse has accepted it) for the first value that would not be
 * kept as sent; null when there is none.
 */
export function findUnfaithful(text: string): Unfaithful | null {
  if (!MAYBE.test(text)) return null;
  // One frame per open container: an object's current key, or an array's current index.
  const stack: { key: string | null; index: number; array: boolean; expectKey: boolean }[] = [];
  const pointer = () => stack.map((f) => '/' + (f.array ? String(f.index) : escape(f.key ?? ''))).join('');
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */) {
      stack.push({ key: null, index: 0, array: false, expectKey: true });
      i++;
    } else if (c === 0x5b /* [ */) {
      stack.push({ key: null, index: 0, array: true, expectKey: false });
      i++;
    } else if (c === 0x7d || c === 0x5d) {
      stack.pop();
      i++;
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.array) top.index++;
      else if (top) top.expectKey = true;
      i++;
    } else if (c === 0x3a /* : */) {
      stack[stack.length - 1]!.expectKey = false;
      i++;
    } else if (c === 0x22 /* " */) {
      let j = i + 1;
      let escaped = false;
      for (; j < n; j++) {
        const d = text.charCodeAt(j);
        if (d === 0x5c) j++, (escaped = true);
        else if (d === 0x22) break;
      }
      const raw = text.slice(i, j + 1);
      const s = escaped ? (JSON.parse(raw) as string) : raw.slice(1, -1);
      const top = stack[stack.length - 1];
      const isKey = top !== undefined && !top.array && top.expectKey;
      if (escaped && !isWellFormed(s)) {
        if (isKey) top.key = toWellFormed(s);
        return {
          pointer: pointer(),
          kind: 'unicode',
          message: `${isKey ? 'a key' : 'the string'} holds a lone UTF-16 surrogate (${/\\u[dD][89a-fA-F][0-9a-fA-F]{2}/.exec(raw)?.[0] ?? 'unpaired'}), which is not Unicode text; send valid UTF-8 or pair the surrogate`,
        };
      }
      if (isKey) top.key = s;
      i = j + 1;
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      NUMBER.lastIndex = i;
      const token = NUMBER.exec(text)![0];
      const v = Number(token);
      const e = token.search(/[eE]/);
      const mantissa = e < 0 ? token : token.slice(0, e);
      if (!Number.isFinite(v)) return { pointer: pointer(), kind: 'number', message: `a number (${digits(token)}) is beyond the range of a double (±1.8e308); send it as a string` };
      if (v === 0 && /[1-9]/.test(mantissa)) return { pointer: pointer(), kind: 'number', message: `a number (${digits(token)}) is too small for a double (it would become 0); send it as a string` };
      if (!/[.eE]/.test(token) && !Number.isSafeInteger(v)) {
        return { pointer: pointer(), kind: 'number', message: `an integer of ${token.replace(/^-/, '').length} digits is beyond ±9007199254740991 (2^53 − 1) and cannot be kept exactly; send it as a string` };
      }
      i += token.length;
    } else i++;
  }
  return null;
}

/** A number's shape, never its value (errors name the field, not the payload): "25 characters, exponent 400". */
function digits(token: string): string {
  const exp = /[eE]([-+]?\d+)$/.exec(token);
  return `${token.length} characters${exp ? `, exponent ${Number(exp[1])}` : ''}`;
}

/** Throws the 400 for the first value of `text` that would not be kept as sent. */
export function assertFaithful(text: string): void {
  const u = findUnfaithful(text);
  if (u) throw new SluiceError(u.kind === 'unicode' ? 'SLUICE_ERR_INVALID_ENCODING' : 'SLUICE_ERR_INVALID_BODY', `${u.pointer || 'the body'}: ${u.message}`, { field: u.pointer });
}
