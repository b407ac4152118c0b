/**
 * Rate-limit keys from client addresses (issue 16.3): one spelling per address,
 * and one bucket per IPv6 prefix.
 *
 * - IPv4-mapped IPv6 (`::ffff:10.1.2.3`) is the IPv4 address; IPv6 is written
 *   in RFC 5952 form (lower case, zeros compressed), so `2001:DB8:0:0::1` and
 *   `2001:db8::1` are one key.
 * - An IPv6 address keys by its first `ipv6Prefix` bits (default 64): a host
 *   owns a /64 (RFC 6177 allocations, SLAAC privacy addresses rotate within it),
 *   so rotating addresses inside it does not buy fresh buckets. The key is
 *   `PREFIX/LEN`, e.g. `2001:db8:1:2::/64`.
 * - IPv4 addresses key by the full address.
 * A string that is not an IP address (a missing peer) is its own key.
 */
import ipaddr from 'ipaddr.js';

/** Dotted IPv4 without leading zeros: already canonical (the common case, no parsing). */
const PLAIN_V4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** IPv6 keys by prefix length, bounded (cleared when full): parsing costs microseconds, a lookup nanoseconds. */
const v6Keys = new Map<number, Map<string, string>>();
const V6_CACHE_MAX = 65_536;

/** Canonical text of an address: IPv4 dotted, IPv6 RFC 5952; unparseable input unchanged. */
export function canonicalIp(addr: string): string {
  if (PLAIN_V4.test(addr)) return addr;
  if (!ipaddr.isValid(addr)) return addr;
  const a = ipaddr.parse(addr);
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) return (a as ipaddr.IPv6).toIPv4Address().toString();
  return a.toString();
}

/** Key of a client address under `key: ip` with an IPv6 prefix length (1-128). */
export function ipKey(addr: string, ipv6Prefix: number): string {
  if (PLAIN_V4.test(addr)) return addr;
  let cache = v6Keys.get(ipv6Prefix);
  if (!cache) v6Keys.set(ipv6Prefix, (cache = new Map()));
  let key = cache.get(addr);
  if (key === undefined) {
    key = computeIpKey(addr, ipv6Prefix);
    if (cache.size >= V6_CACHE_MAX) cache.clear();
    cache.set(addr, key);
  }
  return key;
}

function computeIpKey(addr: string, ipv6Prefix: number): string {
  if (!ipaddr.isValid(addr)) return addr === '' ? '-' : addr;
  let a = ipaddr.parse(addr);
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) a = (a as ipaddr.IPv6).toIPv4Address();
  if (a.kind() === 'ipv4') return a.toString();
  if (ipv6Prefix >= 128) return a.toString();
  const bytes = a.toByteArray();
  let bits = ipv6Prefix;
  for (let i = 0; i < 16; i++) {
    if (bits >= 8) bits -= 8;
    else {
      bytes[i] = bits === 0 ? 0 : bytes[i]! & (0xff << (8 - bits));
      bits = 0;
    }
  }
  return `${ipaddr.fromByteArray(bytes).toString()}/${ipv6Prefix}`;
}
