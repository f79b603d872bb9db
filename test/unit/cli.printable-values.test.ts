import { expect, it } from 'vitest';
import { table } from '../../src/cli/query.js';

it('cli.a-table-shows-control-characters-of-values-escaped-never-raw', () => {
  // A write key is public in browser pages: event values are anyone's, and a terminal runs
  // the escape sequences it is given (clear the screen, set the window title).
  const hostile = '\u001b[2J\u001b[31mFAKE ROW\u001b]0;title\u0007';
  const out = table(['properties.p', 'count'], [[hostile, 1]]);
  expect(out).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/);
  expect(out).toContain('\\u001b[2J\\u001b[31mFAKE ROW\\u001b]0;title\\u0007');
  expect(table(['r'], [['abc\u202edef']])).toContain('abc\\u202edef');
});
