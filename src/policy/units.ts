/** Parsing of the human units a policy uses. Each returns undefined when the text is not valid. */
import ms from 'ms';
import bytes from 'bytes-iec';
import ipaddr from 'ipaddr.js';
import { DURATION_RE, SIZE_RE, RATE_RE } from './schema.js';

const durationRe = new RegExp(DURATION_RE);
const sizeRe = new RegExp(SIZE_RE);
const rateRe = new RegExp(RATE_RE);

/** "250ms", "5s", "1m", "2h" → milliseconds. A bare number is not a duration (unit ambiguity). */
export function parseDuration(text: string): number | undefined {
  if (!durationRe.test(text)) return undefined;
  const v = ms(text.replace(/\s+/g, '') as ms.StringValue);
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** "64KiB" (1024-based), "500kB" (1000-based), "1MiB", a plain byte count → bytes. */
export function parseSize(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isInteger(text) && text >= 0 ? text : undefined;
  if (!sizeRe.test(text)) return undefined;
  // bytes-iec wants a B suffix for the unit to be read; "64Ki" is as clear as "64KiB".
  const t = text.replace(/\s+/g, '');
  const withB = /[kKMGT]i?$/.test(t) ? `${t}B` : t;
  const v = bytes.parse(withB, { mode: 'metric' });
  return typeof v === 'number' && Number.isFinite(v) ? Math.round(v) : undefined;
}

/** "1MiB/s" → bytes per second. */
export function parseRate(text: string): number | undefined {
  if (!rateRe.test(text)) return undefined;
  const v = parseSize(text.replace(/\s*\/\s*s\s*$/, ''));
  return v !== undefined && v > 0 ? v : undefined;
}

export type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** "10.0.0.0/8", "::1", "127.0.0.1" → [address, prefix]; IPv4-mapped IPv6 is normalised to IPv4. */
export function parseCidr(text: string): Cidr | undefined {
  try {
    if (text.includes('/')) {
      const [addr, bits] = ipaddr.parseCIDR(text);
      return [normalise(addr), addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() ? bits - 96 : bits];
    }
    const addr = normalise(ipaddr.parse(text));
    return [addr, addr.kind() === 'ipv4' ? 32 : 128];
  } catch {
    return undefined;
  }
}

export function normalise(addr: ipaddr.IPv4 | ipaddr.IPv6): ipaddr.IPv4 | ipaddr.IPv6 {
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
    return (addr as ipaddr.IPv6).toIPv4Address();
  }
  return addr;
}
