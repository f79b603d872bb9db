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

/** The 8 groups of an IPv6 address (the last two from a dotted IPv4 tail), or null. */
function ipv6Groups(ip: string): number[] | null {
  let text = ip.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = text.slice(0, dotted.index) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail, more] = text.split('::');
  if (more !== undefined) return null;
  const left = head ? head.split(':') : [];
  const right = tail === undefined ? [] : tail ? tail.split(':') : [];
  const fill = tail === undefined ? 0 : 8 - left.length - right.length;
  const groups = [...left, ...Array<string>(Math.max(0, fill)).fill('0'), ...right].map((g) => parseInt(g, 16));
  return groups.length === 8 && groups.every((g) => g >= 0 && g <= 0xffff) ? groups : null;
}

/**
 * The IPv4 address an IPv6 address carries, for the forms that reach it: in its last 32 bits
 * IPv4-mapped (::ffff:0:0/96), SIIT (::ffff:0:0:0/96, RFC 6145), IPv4-compatible (::/96,
 * deprecated by RFC 4291 but still routed by some stacks), NAT64 (64:ff9b::/96, RFC 6052, and
 * the local-use 64:ff9b:1::/48, RFC 8215); in bits 16-47, 6to4 (2002::/16, RFC 3056).
 */
function embeddedIpv4(ip: string): string | null {
  const g = ipv6Groups(ip);
  if (!g) return null;
  const v4 = (hi: number, lo: number) => [hi >> 8, hi & 0xff, lo >> 8, lo & 0xff].join('.');
  if (g[0] === 0x2002) return v4(g[1]!, g[2]!);
  const zeros = g.slice(0, 4).every((x) => x === 0);
  const mapped = zeros && g[4] === 0 && g[5] === 0xffff;
  const siit = zeros && g[4] === 0xffff && g[5] === 0;
  const compatible = zeros && g[4] === 0 && g[5] === 0 && (g[6] !== 0 || g[7]! > 1);
  const nat64 = g[0] === 0x64 && g[1] === 0xff9b && (g.slice(2, 6).every((x) => x === 0) || g[2] === 1);
  return mapped || siit || compatible || nat64 ? v4(g[6]!, g[7]!) : null;
}

/** Why sluice will not send to `ip`, or null. An IPv6 address carrying an IPv4 one is judged as both. */
export function addressRefusal(ip: string, allowPrivate: boolean): string | null {
  const candidates: [string, 'ipv4' | 'ipv6'][] = [[ip, isIP(ip) === 6 ? 'ipv6' : 'ipv4']];
  const v4 = isIP(ip) === 6 ? embeddedIpv4(ip) : null;
  if (v4) candidates.push([v4, 'ipv4']);
  for (const [address, family] of candidates) {
    if (LINK_LOCAL.check(address, family)) return `${ip} is link-local or a cloud instance metadata address, never a receiver`;
    if (!allowPrivate && PRIVATE.check(address, family)) return `${ip} is a loopback or private address, and alerts.privateReceivers is false`;
  }
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
