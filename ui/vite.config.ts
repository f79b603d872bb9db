import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

/**
 * The console, built into dist/ui, which sluice serves at /ui/ (src/http/routes/console.ts).
 * Everything it needs is bundled: nothing is fetched from elsewhere at run time, and no
 * script or style is inline (the console's Content-Security-Policy forbids both).
 */
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/ui/',
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../dist/ui', import.meta.url)),
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: 'es2022',
  },
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
});
