import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { CLI, freePort, kill9, startServer, stop } from '../helpers/server.js';
import { tmpDir } from '../helpers/tmp.js';

describe('sluice up and its data directory', () => {
  it('up.refuses-a-second-server-on-the-same-data-dir-and-takes-over-after-kill-9', async () => {
    const dir = tmpDir();
    const first = await startServer(dir, await freePort());
    try {
      const second = spawnSync(process.execPath, [CLI, 'up', '--data-dir', dir, '--port', String(await freePort())], { encoding: 'utf8', timeout: 20_000 });
      expect(second.status).toBe(2);
      expect(second.stderr).toContain(`another sluice (pid ${first.child.pid}) is running on`);
    } finally {
      await kill9(first);
    }
    // The pid file left by the killed server names a dead process: the next start takes over.
    const third = await startServer(dir, await freePort());
    expect(await stop(third)).toBe(0);
  });
});
