import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { deliverDue } from '../../src/alerts/deliver.js';
import { parseReceiver } from '../../src/alerts/notify.js';
import { addressRefusal, receiverRefusal } from '../../src/alerts/receiver-address.js';
import { SqliteCatalog } from '../../src/backends/sqlite/catalog.js';
import { ManualClock } from '../../src/core/clock.js';
import { tmpDir } from '../helpers/tmp.js';

describe('where alert notifications may go (server-side request forgery)', () => {
  it('receivers.link-local-is-always-refused-private-only-when-configured', async () => {
    for (const ip of ['169.254.169.254', 'fe80::1', '::ffff:169.254.169.254', 'fd00:ec2::254', '100.100.100.200']) expect(addressRefusal(ip, true), ip).toMatch(/link-local or a cloud instance metadata address/);
    for (const ip of ['127.0.0.1', '10.1.2.3', '172.16.0.9', '192.168.1.1', '100.64.0.1', '::1', 'fd00::1', '0.0.0.0']) {
      expect(addressRefusal(ip, true), ip).toBeNull();
      expect(addressRefusal(ip, false), ip).toMatch(/loopback or private address, and alerts.privateReceivers is false/);
    }
    for (const ip of ['8.8.8.8', '2001:4860:4860::8888', '172.32.0.1']) expect(addressRefusal(ip, false), ip).toBeNull();
    // IPv6 forms that carry an IPv4 address in their last 32 bits, as URLs normalise them:
    // IPv4-compatible (::a9fe:a9fe is ::169.254.169.254), NAT64 (64:ff9b::/96), mapped in hex.
    for (const url of ['http://[::169.254.169.254]/', 'http://[64:ff9b::a9fe:a9fe]/', 'http://[::ffff:a9fe:a9fe]/', 'http://[64:ff9b::169.254.169.254]/', 'http://[64:ff9b:1::a9fe:a9fe]/', 'http://[::ffff:0:a9fe:a9fe]/', 'http://[2002:a9fe:a9fe::]/']) {
      const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
      expect(addressRefusal(host, true), url).toMatch(/link-local or a cloud instance metadata address/);
    }
    expect(addressRefusal('::7f00:1', false)).toMatch(/loopback or private/);
    expect(addressRefusal('64:ff9b::808:808', false)).toBeNull();
    // A name is judged by what it resolves to.
    expect(await receiverRefusal('http://localhost:9/hook', false)).toMatch(/^receiver localhost:9 refused: .* is a loopback or private address/);
    expect(await receiverRefusal('http://localhost:9/hook', true)).toBeNull();
    expect(await receiverRefusal('http://[fe80::1]/x', true)).toMatch(/link-local/);
    // Written with a link-local address: refused at once, naming the field.
    expect(() => parseReceiver({ type: 'webhook', url: 'http://169.254.169.254/latest/meta-data/' })).toThrow(expect.objectContaining({ field: 'url', message: expect.stringMatching(/link-local/) }));
  });

  it('receivers.a-refused-address-is-never-sent-to-and-the-failure-says-why', async () => {
    let hits = 0;
    const server = http.createServer((_req, res) => {
      hits++;
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const hook = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    const catalog = new SqliteCatalog(path.join(tmpDir('sluice-alerts-'), 'sluice.db'));
    try {
      const store = catalog.alerts;
      const clock = new ManualClock();
      await store.saveEvaluation({ tenant: 'acme', states: [], transitions: [], objects: [], notifications: [{ id: 'n1', receiver: 'oncall', body: { type: 'webhook', url: hook, payloads: [{ hello: 1 }] }, nextAt: clock.now() }] });
      const failures: string[] = [];
      const refusal = (url: string) => receiverRefusal(url, false);
      expect(await deliverDue({ store, clock, refusal, onResult: (_r, _ok, _t, f) => f && failures.push(f.error) })).toEqual({ delivered: 0, failed: 1 });
      expect(hits).toBe(0);
      expect(failures[0]).toMatch(/^receiver 127\.0\.0\.1:\d+ refused: 127\.0\.0\.1 is a loopback or private address/);
      // A redirect is not followed (it could lead to a refused address): a failure that says so.
      const redirecting = http.createServer((_req, res) => {
        res.writeHead(307, { location: 'http://169.254.169.254/latest/meta-data/' });
        res.end();
      });
      await new Promise<void>((r) => redirecting.listen(0, '127.0.0.1', r));
      await store.saveEvaluation({ tenant: 'acme', states: [], transitions: [], objects: [], notifications: [{ id: 'n2', receiver: 'moved', body: { type: 'webhook', url: `http://127.0.0.1:${(redirecting.address() as AddressInfo).port}/`, payloads: [{ hello: 2 }] }, nextAt: clock.now() }] });
      const redirected: string[] = [];
      await deliverDue({ store, clock, refusal: (url) => receiverRefusal(url, true), onResult: (r, _ok, _t, f) => r === 'moved' && f && redirected.push(f.error) });
      redirecting.close();
      expect(redirected[0]).toMatch(/answered 307 \(a redirect, which is not followed: give the receiver its final URL\)/);
      // Allowed (the default): delivered.
      await clock.advance(10 * 60_000);
      expect(await deliverDue({ store, clock, refusal: (url) => receiverRefusal(url, true) })).toMatchObject({ delivered: 1 }); // (and the redirecting one fails again)
      expect(hits).toBe(1);
    } finally {
      await catalog.close();
      server.close();
    }
  });
});
