import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

/**
 * Where alert notifications may be sent. A receiver's URL is written by a tenant's admin key
 * and sluice POSTs to it from its own place in the network, so a receiver is a way to reach
 * what only sluice can (server-side request forgery, OWASP's SSRF prevention cheat sheet):
 *
 * - link-local addresses (169.254.0.0/16, fe80::/10) and the metadata addresses outside them
 *   (fd00:ec2::254, 100.100.100.200) are always refused: they hold the cloud providers'
 *   instance metadata services (169.254.169.254), never a webhook; redirects are not followed;
 * - loopback and private networks (127.0.0.0/8, ::1, 10.0.0.0/8, 172.16.0.0/12,
 *   192.168.0.0/16, 100.64.0.0/10, fc00::/7, 0.0.0.0/8) are refused when
 *   `alerts.privateReceivers` is false: set it so where tenants you do not trust write
 *   receivers. On by default: on one machine, a local Alertmanager is a common receiver.
 *
 * A host name is resolved, and refused if any of its addresses is; the request then resolves
 * it again, so a name whose answers change between the two (DNS rebinding) is not stopped:
 * restrict sluice's egress at the network for that.
 */
const LINK_LOCAL = new BlockList();
LINK_LOCAL.addSubnet('169.254.0.0', 16, 'ipv4');
LINK_LOCAL.addSubnet('fe80::', 10, 'ipv6');
// Instance metadata services outside link-local: AWS's IPv6 endpoint, Alibaba Cloud's.
LINK_LOCAL.addAddress('fd00:ec2::254', 'ipv6');
LINK_LOCAL.addAddress('100.100.100.200', 'ipv4');

const PRIVATE = new BlockList();
for (const [net, bits] of [['127.0.0.0', 8], ['10.0.0.0', 8], ['172.16.0.0', 12], ['192.168.0.0', 16], ['100.64.0.0', 10], ['0.0.0.0', 8]] as const) PRIVATE.addSubnet(net, bits, 'ipv4');
PRIVATE.addSubnet('fc00::', 7, 'ipv6');
PRIVATE.addAddress('::1', 'ipv6');
PRIVATE.addAddress('::', 'ipv6');

/** Why sluice will not send to `ip`, or null. An IPv4-mapped IPv6 address is judged as IPv4. */
export function addressRefusal(ip: string, allowPrivate: boolean): string | null {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  const address = mapped ? mapped[1]! : ip;
  const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
  if (LINK_LOCAL.check(address, family)) return `${ip} is link-local or a cloud instance metadata address, never a receiver`;
  if (!allowPrivate && PRIVATE.check(address, family)) return `${ip} is a loopback or private address, and alerts.privateReceivers is false`;
  return null;
}

/** Why sluice will not send to `url`, or null: its host, resolved when it is a name (see above). */
export async function receiverRefusal(url: string, allowPrivate: boolean): Promise<string | null> {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  const addresses = isIP(host) ? [host] : (await lookup(host, { all: true }).catch(() => [])).map((a) => a.address);
  for (const ip of addresses) {
    const why = addressRefusal(ip, allowPrivate);
    if (why) return `receiver ${new URL(url).host} refused: ${why}`;
  }
  return null;
}
