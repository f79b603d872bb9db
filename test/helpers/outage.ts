import net from 'node:net';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort } from './server.js';
import { tmpDir } from './tmp.js';

/**
 * A TCP hop in front of a real server, that a test can cut (every connection reset, new ones
 * refused) and restore: an outage of that server as its clients see it, without stopping a
 * service other tests share.
 */
export class Outage {
  private readonly sockets = new Set<net.Socket>();
  private down = false;
  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async in(front: { host: string; port: number }): Promise<Outage> {
    const port = await freePort();
    let outage: Outage | null = null;
    const server = net.createServer((client) => {
      if (!outage || outage.down) {
        client.destroy();
        return;
      }
      const upstream = net.connect(front.port, front.host);
      for (const s of [client, upstream]) {
        outage.sockets.add(s);
        s.on('close', () => outage?.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    outage = new Outage(server, port);
    return outage;
  }

  cut(): void {
    this.down = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  restore(): void {
    this.down = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A local 3-node JetStream cluster of real `nats-server` processes on free loopback ports. */
export class NatsCluster {
  readonly nodes: { port: number; process: ChildProcess | null; config: string }[] = [];
  /** Whether the servers fsync every write (`sync_interval: always`, NATS 2.10 and later). */
  syncAlways = false;

  /** Writes the nodes' configurations and starts `started` of them (all by default). */
  static async start(size = 3, started = size): Promise<NatsCluster> {
    const c = new NatsCluster();
    const dir = tmpDir('sluice-nats-');
    const ports = await Promise.all(Array.from({ length: size }, () => freePort()));
    const routes = await Promise.all(Array.from({ length: size }, () => freePort()));
    c.syncAlways = serverSupportsSyncAlways();
    for (let i = 0; i < size; i++) {
      const config = path.join(dir, `n${i}.conf`);
      fs.writeFileSync(
        config,
        [
          `port: ${ports[i]}`,
          `host: 127.0.0.1`,
          `server_name: n${i}`,
          `jetstream { store_dir: "${path.join(dir, `d${i}`)}"${c.syncAlways ? ', sync_interval: always' : ''} }`,
          `cluster { name: sluice_test, host: 127.0.0.1, port: ${routes[i]}, routes: [${routes.filter((_, j) => j !== i).map((r) => `"nats://127.0.0.1:${r}"`).join(', ')}] }`,
        ].join('\n'),
      );
      c.nodes.push({ port: ports[i]!, process: null, config });
    }
    for (let i = 0; i < started; i++) c.startNode(i);
    return c;
  }

  get url(): string {
    return this.nodes.map((n) => `nats://127.0.0.1:${n.port}`).join(',');
  }

  startNode(i: number): void {
    const node = this.nodes[i]!;
    node.process = spawn('nats-server', ['-c', node.config], { stdio: 'ignore' });
  }

  killNode(i: number): void {
    this.nodes[i]!.process?.kill('SIGKILL');
    this.nodes[i]!.process = null;
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.nodes.map(
        (n) =>
          new Promise<void>((resolve) => {
            if (!n.process || n.process.exitCode !== null) return resolve();
            n.process.once('exit', () => resolve());
            n.process.kill('SIGKILL');
          }),
      ),
    );
  }
}

/** `sync_interval` arrived in NATS 2.10. */
export function serverSupportsSyncAlways(): boolean {
  const out = spawnSyncText('nats-server', ['--version']);
  const m = /v(\d+)\.(\d+)/.exec(out);
  return m !== null && (Number(m[1]) > 2 || (Number(m[1]) === 2 && Number(m[2]) >= 10));
}

function spawnSyncText(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`;
}
