import { describe, expect, it } from 'vitest';
import { PipelineError } from '../../src/transform/document.js';
import { bindTypeIdentifier, compileExpression, ExpressionError, type ExpressionEvent } from '../../src/transform/expression.js';
import { castValue, compileTransform, hashValue, maskValue } from '../../src/transform/run.js';

const TS = Date.UTC(2026, 10, 24, 10, 0, 0, 123);
function ev(properties: Record<string, unknown>, context: Record<string, unknown> = {}, type = 'checkout'): ExpressionEvent {
  return { type, key: 'user-42', ts: TS, properties, context };
}
const run = (steps: unknown[], e: ExpressionEvent, salt = 'salt-a') => compileTransform({ steps }).run(e, salt);

describe('transform steps', () => {
  it('transform.the-issue-example-pipeline-runs-end-to-end', () => {
    const steps = [
      { cast: { field: 'properties.amount', to: 'number' } },
      { set: { field: 'properties.amount_cents', value: 'int(properties.amount * 100.0)' } },
      { rename: { from: 'properties.userID', to: 'properties.user_id' } },
      { remove: { fields: ['context.ip'] } },
      { redact: { fields: ['properties.email'], how: 'hash' } },
      { drop: { when: 'has(properties.bot) && properties.bot == true' } },
      { dead_letter: { when: '!has(properties.order_id)', reason: 'missing_order_id' } },
    ];
    const r = run(steps, ev({ amount: '12.5', userID: 'u1', email: 'a@example.com', order_id: 'o1' }, { ip: '203.0.113.7', locale: 'de' }));
    expect(r.outcome).toBe('stored');
    expect(r.output!.properties).toEqual({ amount: 12.5, amount_cents: 1250, user_id: 'u1', email: hashValue('a@example.com', 'salt-a'), order_id: 'o1' });
    expect(r.output!.context).toEqual({ locale: 'de' });
    expect(r.changed).toEqual(['properties.amount', 'properties.amount_cents', 'properties.userID', 'properties.user_id', 'context.ip', 'properties.email']);

    expect(run(steps, ev({ amount: 3, bot: true, order_id: 'o' }))).toMatchObject({ outcome: 'dropped', output: null, reason: 'dropped', step: 5, message: 'dropped by step 5 (drop)' });
    expect(run(steps, ev({ amount: 3 }))).toMatchObject({ outcome: 'dead_lettered', reason: 'missing_order_id', step: 6 });
  });

  it('transform.cast-each-target', () => {
    expect(castValue('12.5', 'number')).toBe(12.5);
    expect(castValue(' 7 ', 'number')).toBe(7);
    expect(castValue(3, 'number')).toBe(3);
    for (const bad of ['', 'abc', true, {}, 'Infinity']) expect(() => castValue(bad, 'number')).toThrow(/cannot cast/);

    expect(castValue('42', 'integer')).toBe(42);
    expect(castValue(-3, 'integer')).toBe(-3);
    for (const bad of ['12.5', 12.5, '9007199254740993', 'x']) expect(() => castValue(bad, 'integer')).toThrow(/cannot cast .* to integer/);

    expect(castValue(12.5, 'string')).toBe('12.5');
    expect(castValue(true, 'string')).toBe('true');
    expect(() => castValue({ a: 1 }, 'string')).toThrow(/cannot cast/);

    expect(castValue('TRUE', 'boolean')).toBe(true);
    expect(castValue('0', 'boolean')).toBe(false);
    expect(castValue(1, 'boolean')).toBe(true);
    expect(() => castValue('yes', 'boolean')).toThrow(/cannot cast/);

    expect(castValue('2026-11-24T11:00:00+01:00', 'timestamp')).toBe('2026-11-24T10:00:00.000Z');
    expect(castValue(TS, 'timestamp')).toBe('2026-11-24T10:00:00.123Z');
    expect(() => castValue('next tuesday', 'timestamp')).toThrow(/cannot cast/);
  });

  it('transform.cast-leaves-missing-and-null-fields-and-fails-the-event-on-an-uncastable-value', () => {
    const steps = [{ cast: { field: 'properties.amount', to: 'number' } }];
    expect(run(steps, ev({}))).toMatchObject({ outcome: 'stored', changed: [] });
    expect(run(steps, ev({ amount: null }))).toMatchObject({ outcome: 'stored', changed: [] });
    const r = run(steps, ev({ amount: 'twelve' }));
    expect(r).toMatchObject({ outcome: 'dead_lettered', reason: 'transform_failed', step: 0, output: null });
    expect(r.message).toBe('step 0 (cast): cannot cast a string of 6 characters to number'); // the field, never the value
  });

  it('transform.set-rename-remove-with-types-and-when', () => {
    const steps = [
      { set: { field: 'properties.kind', value: '"big"' }, when: 'properties.amount > 100.0' },
      { set: { field: 'context.page.section', value: 'type + ":" + key' }, types: ['checkout'] },
      { rename: { from: 'properties.missing', to: 'properties.x' } },
      { remove: { fields: ['properties.tmp', 'properties.absent'] } },
    ];
    const big = run(steps, ev({ amount: 500, tmp: 1 }));
    expect(big.output!.properties).toEqual({ amount: 500, kind: 'big' });
    expect(big.output!.context).toEqual({ page: { section: 'checkout:user-42' } });
    expect(big.changed).toEqual(['properties.kind', 'context.page.section', 'properties.tmp']);
    const other = run(steps, ev({ amount: 5 }, {}, 'signup'));
    expect(other.output!.properties).toEqual({ amount: 5 });
    expect(other.changed).toEqual([]);
  });

  it('transform.a-set-to-an-equal-value-changes-nothing', () => {
    const same = run([{ set: { field: 'properties.n', value: '2.0' } }, { set: { field: 'properties.o', value: '{"b": 1.0, "a": [true]}' } }], ev({ n: 2, o: { a: [true], b: 1 } }));
    expect(same).toMatchObject({ outcome: 'stored', changed: [] });
    const other = run([{ set: { field: 'properties.n', value: '"2"' } }, { set: { field: 'properties.o', value: '{"a": [false]}' } }], ev({ n: 2, o: { a: [true] } }));
    expect(other.changed).toEqual(['properties.n', 'properties.o']);
    expect(run([{ remove: { fields: ['properties.n.deep'] } }, { set: { field: 'properties.n.deep', value: '1' } }], ev({ n: 2 }))).toMatchObject({ outcome: 'dead_lettered', message: 'step 1 (set): properties.n.deep: n is not an object' });
  });

  it('transform.an-expression-error-dead-letters-the-event-with-the-step-and-message', () => {
    const r = run([{ set: { field: 'properties.c', value: 'int(properties.amount * 100.0)' } }], ev({ amount: 'x' }));
    expect(r.outcome).toBe('dead_lettered');
    expect(r.reason).toBe('transform_failed');
    expect(r.message).toMatch(/^step 0 \(set\): /);
    expect(run([{ drop: { when: 'properties.n > 1.0' } }], ev({}))).toMatchObject({ reason: 'transform_failed', step: 0 });
    // The commonest mistake, an int literal beside a JSON number, says how to write it.
    expect(run([{ set: { field: 'properties.c', value: 'int(properties.amount * 100)' } }], ev({ amount: 12.5 })).message).toBe(
      'step 0 (set): no such overload: dyn<double> * int (in "int(properties.amount * 100)"); JSON numbers are CEL doubles: write a double literal (100.0, not 100), or convert with int(x) or double(x)',
    );
  });

  it('transform.redact-hash-is-stable-per-tenant-and-differs-across-tenants', () => {
    const steps = [{ redact: { fields: ['properties.email', 'properties.phone'], how: 'hash' } }];
    const a1 = run(steps, ev({ email: 'a@example.com', phone: 491234 }), 'tenant-a-salt').output!.properties;
    const a2 = run(steps, ev({ email: 'a@example.com', phone: 491234 }), 'tenant-a-salt').output!.properties;
    const b = run(steps, ev({ email: 'a@example.com', phone: 491234 }), 'tenant-b-salt').output!.properties;
    expect(a1).toEqual(a2);
    expect(a1.email).toMatch(/^[0-9a-f]{64}$/);
    expect(a1.email).not.toBe(b.email);
    expect(a1.phone).not.toBe(b.phone);
    expect(a1.email).not.toBe(a1.phone);
  });

  it('transform.redact-mask', () => {
    expect(maskValue('4111111111111111')).toBe('************1111');
    expect(maskValue('secret')).toBe('******');
    expect(maskValue(42)).toBe('****');
    const r = run([{ redact: { fields: ['properties.card'], how: 'mask' } }], ev({ card: '4111111111111111' }));
    expect(r.output!.properties.card).toBe('************1111');
  });

  it('transform.the-event-type-is-bound-as-type', () => {
    expect(bindTypeIdentifier('type == "type" && type(key) == string && properties.type == \'x type\'')).toBe(
      'event__type == "type" && type(key) == string && properties.type == \'x type\'',
    );
    const r = run([{ drop: { when: 'type == "bot_ping"' } }], ev({}, {}, 'bot_ping'));
    expect(r.outcome).toBe('dropped');
    expect(run([{ drop: { when: 'type == "bot_ping"' } }], ev({})).outcome).toBe('stored');
    expect(run([{ set: { field: 'properties.year', value: 'ts.getFullYear()' } }], ev({})).output!.properties.year).toBe(2026);
  });
});

describe('transform document checks', () => {
  const refuse = (steps: unknown[], re: RegExp, position: number | null) => {
    let err: unknown;
    try {
      compileTransform({ steps });
    } catch (e: unknown) {
      err = e;
    }
    expect(err).toBeInstanceOf(PipelineError);
    expect((err as PipelineError).message).toMatch(re);
    expect((err as PipelineError).position).toBe(position);
  };
  it('transform.a-step-that-does-not-compile-is-refused-naming-the-step-and-position', () => {
    refuse([{ cast: { field: 'properties.a', to: 'number' } }, { set: { field: 'properties.b', value: 'int(' } }], /^step 1 \(set\): value: /, 1);
    refuse([{ set: { field: 'properties.b', value: 'nosuch + 1' } }], /^step 0 \(set\): value: Unknown variable: nosuch/, 0);
    refuse([{ cast: { field: 'properties.a', to: 'money' } }], /^step 0 \(cast\): to: one of number, integer/, 0);
    refuse([{ cast: { field: 'type', to: 'string' } }], /^step 0 \(cast\): field: "type" is not a field/, 0);
    refuse([{ remove: { fields: ['properties.__proto__'] } }], /is not a field/, 0);
    refuse([{ rename: { from: 'properties.a' } }], /^step 0 \(rename\): to: required; write a dotted path/, 0);
    refuse([{ drop: { when: '"yes"' } }], /^step 0 \(drop\): drop.when: must be a condition/, 0);
    refuse([{ dead_letter: { when: 'true', reason: 'Bad Reason' } }], /reason: lower-case/, 0);
    refuse([{ upcase: {} }], /^step 0: a step has exactly one kind/, 0);
    refuse([{ drop: { when: 'true' }, cast: { field: 'properties.a', to: 'number' } }], /exactly one kind/, 0);
    refuse([{ drop: { when: 'true' }, types: 'checkout' }], /"types" must be a non-empty array/, 0);
    refuse([{ drop: { when: 'true' }, when: 'properties.' }], /^step 0 \(drop\): when: /, 0);
    refuse([{ redact: { fields: ['properties.a'], how: 'encrypt' } }], /how: "hash" or "mask"/, 0);
    expect(() => compileTransform({ steps: [], extra: 1 })).toThrow(/unknown key "extra"/);
    expect(() => compileTransform([])).toThrow(/must be an object/);
  });
});

describe('expression sandbox', () => {
  const e = ev({ amount: 2, list: Array.from({ length: 100 }, (_, i) => i) });
  it('transform.expressions-reach-no-prototype-and-no-host-object', () => {
    for (const src of ['properties.constructor', 'properties.__proto__', 'properties["__proto__"]', 'properties.toString', 'context.hasOwnProperty']) {
      expect(() => compileExpression(src)(e), src).toThrow(ExpressionError);
    }
    for (const src of ['process', 'globalThis', 'require("fs")', 'this', 'eval("1")', 'Function("return 1")']) {
      expect(() => compileExpression(src), src).toThrow(ExpressionError);
    }
    const r = run([{ set: { field: 'properties.x', value: 'properties.constructor' } }], e);
    expect(r.reason).toBe('transform_failed');
    expect(Object.getPrototypeOf({})).toBe(Object.prototype);
  });

  it('transform.matches-runs-in-linear-time-with-cel-semantics-and-refuses-what-re2-cannot-run', () => {
    // ^(a+)+$ on 40 a's and a '!': backtracking tries 2^40 ways (hours); RE2 answers at once.
    const evil = compileExpression("properties.s.matches('^(a+)+$')", 'bool');
    expect(evil(ev({ s: `${'a'.repeat(40)}!` }))).toBe(false);
    expect(evil(ev({ s: 'a'.repeat(40) }))).toBe(true);
    // A pattern from the event runs on RE2 too.
    expect(compileExpression('properties.s.matches(properties.p)', 'bool')(ev({ s: `${'a'.repeat(40)}!`, p: '^(a+)+$' }))).toBe(false);
    // CEL's matches is a search, not a whole-string match; RE2 syntax.
    expect(compileExpression("properties.s.matches('b[0-9]+')", 'bool')(ev({ s: 'ab12c' }))).toBe(true);
    expect(compileExpression("'type'.matches('^ty') && type.matches('^ch')", 'bool')(ev({}))).toBe(true);
    // Lookaround and backreferences need backtracking: refused when literal, the event fails when not.
    expect(() => compileExpression("properties.s.matches('(?=a)a')")).toThrow(/matches: "\(\?=a\)a" is not a pattern RE2 can run/);
    expect(() => compileExpression('properties.s.matches(properties.p)')(ev({ s: 'aa', p: '(a)\\1' }))).toThrow(/the pattern \(5 characters, from the event\) is not one RE2 can run/);
    // A comment between the dot, the name and the parenthesis does not reach the backtracking engine.
    for (const src of ["properties.s.//x\nmatches('^(a+)+$')", "properties.s.matches//x\n('^(a+)+$')"]) {
      expect(compileExpression(src, 'bool')(ev({ s: `${'a'.repeat(40)}!` })), src).toBe(false);
    }
    // The name users wrote is the one errors give.
    const wrong = compileExpression('properties.s.matches(1.0)');
    expect(() => wrong(ev({ s: 'a' }))).toThrow(/matches/);
    expect(() => wrong(ev({ s: 'a' }))).not.toThrow(/sluice_linear_matches/);
  });

  it('transform.expressions-are-bounded-in-size-and-nesting', () => {
    expect(() => compileExpression('1.0' + ' + 1.0'.repeat(500))).toThrow(ExpressionError);
    // One comprehension in another's body is quadratic in the list (1.8 s an event at 5,000 items): refused.
    expect(() => compileExpression('properties.list.exists(a, properties.list.exists(b, a + b < 0.0))')).toThrow(/may not nest/);
    expect(() => compileExpression('properties.list.all(a, [a].map(b, b).size() == 1)')).toThrow(/may not nest/);
    // A version stored before this bound (nesting 2 deep was allowed) still compiles as stored.
    expect(compileExpression('properties.list.exists(a, properties.list.exists(b, a + b < 0.0))', 'bool', { stored: true })(e)).toBe(false);
    // Chained or side by side: linear, allowed.
    const chained = compileExpression('properties.list.map(a, a * 2.0).filter(b, b > 100.0).size() == 49 && properties.list.all(c, c >= 0.0)', 'bool');
    expect(chained(e)).toBe(true);
  });

  it('transform.a-comprehension-body-walking-another-list-of-the-event-is-refused-past-its-bound-before-it-runs', () => {
    const big = <T,>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));
    const event = (properties: Record<string, unknown>): ExpressionEvent => ({ type: 't', key: 'k', ts: 0, properties, context: {} });
    // 100,000 items against a list of 100,000: 10^10 steps (minutes) if it ran. It is refused at once, naming the shape only.
    const member = compileExpression('properties.l.exists(x, x in properties.m)', 'bool');
    const huge = event({ l: big(100_000, (i) => i + 0.5), m: big(100_000, (i) => -i - 0.5) });
    const t0 = performance.now();
    expect(() => member(huge)).toThrow(/exists: its body walks properties\.m \(weight 100,001\).*limit of 2,000,000 steps/);
    expect(performance.now() - t0).toBeLessThan(1_000);
    // The same event gets the same answer every time (no clock in the bound).
    expect(() => member(huge)).toThrow(ExpressionError);
    // A string searched on every turn counts too, and so does a value built from the event.
    const search = compileExpression('properties.w.exists(x, properties.s.contains(x))', 'bool');
    expect(() => search(event({ w: big(20_000, (i) => `w${i}`), s: 'ab'.repeat(200_000) }))).toThrow(/walks properties\.s/);
    // What real pipelines do stays allowed: a scalar of the event compared on each turn, a
    // literal allow-list, a small list against a small one. A large map looked up on every turn
    // is refused like a list: cel-js types it from its entries each time (16 s for this one).
    const items = big(1_000, (i) => ({ sku: `s${i}`, qty: i }));
    expect(compileExpression('properties.items.exists(i, i.sku == properties.sku)', 'bool')(event({ items, sku: 's999' }))).toBe(true);
    expect(compileExpression("properties.items.all(i, i.sku in ['a', 'b'])", 'bool')(event({ items }))).toBe(false);
    expect(compileExpression('properties.items.exists(i, i.sku in properties.allowed)', 'bool')(event({ items, allowed: big(100, (i) => `s${i * 20}`) }))).toBe(true);
    const byKey = Object.fromEntries(big(50_000, (i) => [`s${i}`, true] as const));
    expect(() => compileExpression('properties.items.all(i, i.sku in properties.known)', 'bool')(event({ items, known: byKey }))).toThrow(/walks properties\.known \(weight 100,000\)/);
  });

  it('transform.evaluation-errors-name-the-key-or-shape-never-a-value-of-the-event', () => {
    const event = (properties: Record<string, unknown>): ExpressionEvent => ({ type: 't', key: 'k', ts: 0, properties, context: {} });
    const fails = (source: string, properties: Record<string, unknown>): string => {
      try {
        compileExpression(source)(event(properties));
      } catch (e: unknown) {
        return (e as Error).message;
      }
      throw new Error(`${source} did not fail`);
    };
    const secret = 'hunter2-secret';
    for (const [source, expected] of [
      ['properties.m[properties.s] == 1.0', /No such key \(14 characters\)/],
      ['bool(properties.s)', /invalid string value \(14 characters\)/],
      ["duration(properties.s) > duration('1s')", /Invalid duration string \(\d+ characters\)/],
    ] as const) {
      const message = fails(source, { m: {}, s: secret });
      expect(message).toMatch(expected);
      expect(message).not.toContain(secret);
    }
    // A key the expression spells itself is named.
    expect(fails('properties.missing == 1.0', {})).toMatch(/No such key: missing/);
    expect(fails("properties.m['lit'] == 1.0", { m: {} })).toMatch(/No such key: lit/);
  });

  it('transform.the-comprehensions-of-all-steps-share-one-budget-per-event', () => {
    const event = (properties: Record<string, unknown>): ExpressionEvent => ({ type: 't', key: 'k', ts: 0, properties, context: {} });
    // The attacker's pipeline: 100 steps, each a comprehension whose body reads nothing of the
    // event (no loop invariant to weigh) but is 190 nodes a turn, over 16,000 items: 10-15 s of
    // the store thread per event, every tenant's commits waiting.
    const body = Array.from({ length: 95 }, () => 'x * 1.5').join(' + ');
    const heavy = compileTransform({ steps: Array.from({ length: 100 }, () => ({ drop: { when: `properties.l.exists(x, ${body} < -1.0)` } })) });
    const t0 = performance.now();
    const r = heavy.run(event({ l: Array(16_000).fill(0) }), 'salt');
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(r).toMatchObject({ outcome: 'dead_lettered', reason: 'transform_failed', step: 0 });
    expect(r.message).toMatch(/exists: its body \(\d[\d,]* nodes a turn\) runs on each of up to [\d,]+\+? items of this event, past the limit of 2,000,000 steps/);
    // Steps each within the bound add up: the event fails at the step that passes what is left.
    const third = compileTransform({ steps: Array.from({ length: 10 }, () => ({ drop: { when: 'properties.l.exists(x, x * 2.0 + x * 3.0 + x * 4.0 < -1.0)' } })) });
    const shared = third.run(event({ l: Array(40_000).fill(0) }), 'salt');
    expect(shared).toMatchObject({ outcome: 'dead_lettered', reason: 'transform_failed' });
    expect(shared.step).toBeGreaterThan(0);
    expect(shared.message).toMatch(/past what is left \([\d,]+\) of the 2,000,000 steps one event may take through all the steps/);
    // What pipelines do every day is far below it: ten steps over a list of 50 items.
    expect(third.run(event({ l: Array(50).fill(0) }), 'salt')).toMatchObject({ outcome: 'stored' });
  });

  it('transform.a-value-an-expression-builds-is-bounded-before-it-becomes-json', () => {
    const event = (properties: Record<string, unknown>): ExpressionEvent => ({ type: 't', key: 'k', ts: 0, properties, context: {} });
    // The attacker's step: 10,000 copies of a 20 KB string, 200 MB once JSON; it ran the
    // process out of heap from POST /v1/pipeline/test, and crash-looped the store live.
    const copies = compileTransform({ steps: [{ set: { field: 'properties.out', value: 'properties.l.map(x, properties.s + properties.s + properties.s + properties.s)' } }] });
    const t0 = performance.now();
    const r = copies.run(event({ l: Array(10_000).fill(0), s: 'S'.repeat(5_000) }), 'salt');
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(r).toMatchObject({ outcome: 'dead_lettered', reason: 'transform_failed' });
    // Without a comprehension: a string grown past the bound by concatenation.
    const grown = compileExpression(`properties.s${' + properties.s'.repeat(9)}`);
    expect(() => grown(event({ s: 'x'.repeat(30_000) }))).toThrow(/a string of 300,000 characters, over 262,144/);
    expect(grown(event({ s: 'x'.repeat(1_000) }))).toHaveLength(10_000);
  });

  it('transform.forms-whose-cost-outgrows-the-event-are-refused-when-written', () => {
    const event = (properties: Record<string, unknown>): ExpressionEvent => ({ type: 't', key: 'k', ts: 0, properties, context: {} });
    // 15 nested binds doubling the event's list: 2^15 copies, the process out of heap.
    const binds = Array.from({ length: 14 }, (_, i) => `cel.bind(v${i + 2}, v${i + 1} + v${i + 1}, `).join('');
    expect(() => compileExpression(`cel.bind(v1, properties.l + properties.l, ${binds}size(v15)${')'.repeat(15)}`)).toThrow(/cel\.bind is not available in pipelines/);
    // A bind hid a loop invariant from the weighing: refused whatever it binds.
    expect(() => compileExpression("cel.bind(m, properties.m, properties.s.split('').all(x, !(x in m)))", 'bool')).toThrow(/cel\.bind/);
    // Each map over a map's result can multiply every item: 2^14 over 14 links.
    expect(() => compileExpression('properties.l.map(x, [x]).map(y, y + y).size()')).toThrow(/map may not run over another map's result/);
    expect(() => compileExpression('properties.l.map(x, x * 2.0).filter(y, y > 1.0).map(z, z + 1.0)')).toThrow(/another map's result/);
    // A list built from many copies of the event's lists.
    expect(() => compileExpression(`(properties.l${' + properties.l'.repeat(59)}).map(x, x + 1.0).size()`)).toThrow(/its list reads the event more than twice/);
    expect(() => compileExpression('properties.l.join(properties.s)')).toThrow(/join's separator must be a literal/);
    // What stays allowed: one map, a map over a filter, two lists joined, a literal separator.
    expect(compileExpression('properties.l.filter(x, x > 1.0).map(y, y * 2.0)')(event({ l: [1, 2, 3] }))).toEqual([4, 6]);
    expect(compileExpression('(properties.a + properties.b).exists(x, x == 3.0)', 'bool')(event({ a: [1], b: [3] }))).toBe(true);
    expect(compileExpression("properties.tags.join(', ')")(event({ tags: ['a', 'b'] }))).toBe('a, b');
    // A version stored before these rules still compiles (refusing it would dead-letter its tenant's traffic).
    expect(compileExpression('properties.l.map(x, [x]).map(y, y + y).size()', undefined, { stored: true })(event({ l: [1, 2] }))).toBe(2);
  });
});
