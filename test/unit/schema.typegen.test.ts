import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { generateTypes, typeName } from '../../src/schema/typegen.js';
import { tmpDir } from '../helpers/tmp.js';

const CLIENT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/client/index.js');

const schemas = [
  {
    type: 'checkout',
    version: 3,
    schema: {
      type: 'object',
      required: ['amount'],
      additionalProperties: false,
      properties: {
        amount: { type: 'number', description: 'in the currency below' },
        currency: { enum: ['EUR', 'USD'] },
        items: { type: 'array', items: { type: 'object', required: ['sku'], properties: { sku: { type: 'string' }, qty: { type: 'integer' } } } },
        'coupon-code': { type: ['string', 'null'] },
      },
    },
  },
  { type: 'page.view', version: 1, schema: {} },
];

describe('sluice schema types', () => {
  it('typegen.names-and-shapes', () => {
    expect(typeName('checkout.completed')).toBe('CheckoutCompleted');
    expect(typeName('2fa-enabled')).toBe('E2faEnabled');
    const text = generateTypes(schemas, 'test');
    expect(text).toContain('export type CheckoutProperties = {');
    expect(text).toContain('  amount: number;');
    expect(text).toContain('  currency?: "EUR" | "USD";');
    expect(text).toContain('  "coupon-code"?: string | null;');
    expect(text).toContain('export type PageViewProperties = Record<string, unknown>;');
    expect(text).toContain('  "page.view": PageViewProperties;');
  });

  it('typegen.output-type-checks-track-calls-with-the-sdk', () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}');
    fs.writeFileSync(path.join(dir, 'events.ts'), generateTypes(schemas, 'test'));
    fs.writeFileSync(
      path.join(dir, 'usage.ts'),
      [
        `import { SluiceClient } from ${JSON.stringify(CLIENT)};`,
        `import type { SluiceEvents } from './events.js';`,
        `const c = new SluiceClient<SluiceEvents>({ url: 'http://x', writeKey: 'k' });`,
        `void c.track('checkout', { amount: 1, currency: 'EUR', items: [{ sku: 'a', qty: 2 }] });`,
        `void c.track('page.view', { anything: 1 });`,
        `// @ts-expect-error amount is required`,
        `void c.track('checkout', { currency: 'EUR' });`,
        `// @ts-expect-error not one of the currencies`,
        `void c.track('checkout', { amount: 1, currency: 'GBP' });`,
        `// @ts-expect-error no such property (additionalProperties: false)`,
        `void c.track('checkout', { amount: 1, colour: 'red' });`,
        `// @ts-expect-error no such event type`,
        `void c.track('nope', {});`,
      ].join('\n'),
    );
    const program = ts.createProgram([path.join(dir, 'usage.ts')], {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      types: ['node'],
      skipLibCheck: true,
    });
    const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    expect(diagnostics).toEqual([]);
  });
});
