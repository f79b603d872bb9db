import { execFileSync } from 'node:child_process';
import { tmpDir } from './tmp.js';

/**
 * Small tmpfs mounts, to fill a disk for real. Mounting needs root (CI runs as root);
 * elsewhere the tests that need one say so and are skipped, unless CI is set, where they fail.
 */
export function canMountTmpfs(): boolean {
  const probe = tmpDir('sluice-mount-probe-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Whether this machine can mount; warns, or throws in CI, when it cannot. */
export function tmpfsOrSkip(what: string): boolean {
  if (canMountTmpfs()) return true;
  if (process.env.CI) throw new Error(`${what} needs to mount a tmpfs (root); CI must run it`);
  console.warn(`${what}: cannot mount a tmpfs here (not root); the test is skipped`);
  return false;
}

/** Mounts a tmpfs of `sizeMb` at a new directory; `options` adds mount options (uid=…, mode=…). */
export function mountTmpfs(sizeMb: number, options: string[] = []): { dir: string; resize(mb: number): void; unmount(): void } {
  const dir = tmpDir('sluice-tmpfs-');
  execFileSync('mount', ['-t', 'tmpfs', '-o', [`size=${sizeMb}m`, ...options].join(','), 'tmpfs', dir]);
  return {
    dir,
    resize: (mb) => execFileSync('mount', ['-o', `remount,size=${mb}m`, dir]),
    unmount: () => execFileSync('umount', ['-l', dir], { stdio: 'ignore' }),
  };
}
