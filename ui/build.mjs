// Builds the console (ui/ into dist/ui) with a type check first, unless dist/ui/index.html
// is newer than every source and the lockfile: `npm start` does not rebuild what has not
// changed. `--force` builds anyway.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = path.join(root, 'dist/ui/index.html');

function newest(p) {
  const s = statSync(p);
  if (!s.isDirectory()) return s.mtimeMs;
  return Math.max(s.mtimeMs, ...readdirSync(p).map((f) => newest(path.join(p, f))));
}

const stale = process.argv.includes('--force') || !existsSync(out) || statSync(out).mtimeMs < Math.max(newest(path.join(root, 'ui')), statSync(path.join(root, 'package-lock.json')).mtimeMs);
if (stale) {
  const bin = (name) => path.join(root, 'node_modules/.bin', name);
  execFileSync(bin('tsc'), ['-p', 'ui/tsconfig.json'], { cwd: root, stdio: 'inherit' });
  execFileSync(bin('vite'), ['build', '--config', 'ui/vite.config.ts'], { cwd: root, stdio: 'inherit' });
}
