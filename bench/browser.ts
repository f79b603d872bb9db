import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/**
 * The system's Chromium, for the console's tests and its bench: SLUICE_TEST_CHROMIUM, else
 * `chromium` on the PATH (Debian: apt-get install chromium). Null when there is none; in CI
 * (CI=true) that is an error, never a skip.
 */
export function chromiumPath(): string | null {
  const env = process.env.SLUICE_TEST_CHROMIUM;
  if (env) {
    if (!fs.existsSync(env)) throw new Error(`SLUICE_TEST_CHROMIUM=${env} does not exist`);
    return env;
  }
  for (const name of ['chromium', 'chromium-browser']) {
    try {
      const found = execFileSync('which', [name], { encoding: 'utf8' }).trim();
      if (found) return found;
    } catch {
      // Not on the PATH.
    }
  }
  if (process.env.CI === 'true') throw new Error('no Chromium for the console tests: install it (apt-get install chromium) or set SLUICE_TEST_CHROMIUM; CI never skips them');
  return null;
}

/** Headless, and with nothing that reaches the internet (the machine has none). */
export async function launchChromium(executablePath: string): Promise<Browser> {
  return chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
