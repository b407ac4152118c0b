/**
 * Load-balancing policies over an upstream's targets, as Envoy names them
 * (source/common/upstream/load_balancer_impl.cc, ring_hash_lb.cc):
 *
 * - `roundRobin`: smooth weighted round-robin (nginx's algorithm: each pick adds
 *   every eligible target's weight to its credit, takes the target with the most
 *   credit and charges it the total). Equal weights give plain rotation.
 * - `leastRequest`: power of two choices. Two distinct eligible targets drawn at
 *   random; the one with fewer requests in flight per unit of weight wins.
 * - `random`: weighted random.
 * - `hash`: ring hash (Ketama, Envoy's RING_HASH). Each target owns
 *   `weight × VNODES` points on a 32-bit ring; a key goes to the owner of the
 *   first point at or after its hash, walking on past ineligible targets. Adding
 *   one target of n+1 moves only the keys that land on its points: ≈ 1/(n+1).
 *
 * Pure over indices: the caller says which targets are eligible (healthy, not
 * ejected), so a balancer holds no health state of its own.
 */

/** What a balancer needs of a target. */
export interface Weighted {
  readonly weight: number;
  /** Requests in flight to this target (for leastRequest). */
  readonly active: number;
}

export type Eligible = (i: number) => boolean;

export interface Balancer {
  /**
   * Index of the chosen target, or -1 when none is eligible.
   * `key` is the hash key (balance: hash); other balancers ignore it.
   */
  pick(eligible: Eligible, key?: string): number;
}

/** Random numbers in [0, 1); injected by tests. */
export type Rng = () => number;

export class RoundRobin implements Balancer {
  private readonly credit: number[];

  constructor(private readonly members: readonly Weighted[]) {
    this.credit = members.map(() => 0);
  }

  pick(eligible: Eligible): number {
    let best = -1;
    let total = 0;
    for (let i = 0; i < this.members.length; i++) {
      if (!eligible(i)) continue;
      const w = this.members[i]!.weight;
      this.credit[i]! += w;
      total += w;
      if (best === -1 || this.credit[i]! > this.credit[best]!) best = i;
    }
    if (best !== -1) this.credit[best]! -= total;
    return best;
  }
}

export class RandomPick implements Balancer {
  constructor(
    private readonly members: readonly Weighted[],
    private readonly rng: Rng = Math.random,
  ) {}

  pick(eligible: Eligible): number {
    let total = 0;
    for (let i = 0; i < this.members.length; i++) if (eligible(i)) total += this.members[i]!.weight;
    if (total === 0) return -1;
    let r = this.rng() * total;
    let last = -1;
    for (let i = 0; i < this.members.length; i++) {
      if (!eligible(i)) continue;
      last = i;
      r -= this.members[i]!.weight;
      if (r < 0) return i;
    }
    return last;
  }
}

export class LeastRequest implements Balancer {
  private readonly scratch: number[] = [];

  constructor(
    private readonly members: readonly Weighted[],
    private readonly rng: Rng = Math.random,
  ) {}

  pick(eligible: Eligible): number {
    const ok = this.scratch;
    ok.length = 0;
    for (let i = 0; i < this.members.length; i++) if (eligible(i)) ok.push(i);
    if (ok.length === 0) return -1;
    if (ok.length === 1) return ok[0]!;
    const a = Math.floor(this.rng() * ok.length);
    let b = Math.floor(this.rng() * (ok.length - 1));
    if (b >= a) b++;
    const ia = ok[a]!;
    const ib = ok[b]!;
    const ma = this.members[ia]!;
    const mb = this.members[ib]!;
    // Fewer in flight per unit of weight wins (Envoy: weight / (active + 1)).
    return (ma.active + 1) / ma.weight <= (mb.active + 1) / mb.weight ? ia : ib;
  }
}

/** FNV-1a over UTF-16 code units, then murmur3's fmix32 so that near keys scatter over the ring. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Ring points per unit of weight; 160 as in Ketama (spread within a few % for 10 targets). */
export const VNODES = 160;
/** Ring size bound (Envoy caps its ring too): large weights get fewer points per unit. */
export const MAX_RING = 160_000;

export class RingHash implements Balancer {
  private readonly points: Uint32Array;
  private readonly owners: Uint16Array;
  private readonly fallback: RoundRobin;
  private readonly size: number;

  /** `ids` name the targets (their URLs): the ring depends on them, not on list order. */
  constructor(members: readonly Weighted[], ids: readonly string[]) {
    const total = members.reduce((s, m) => s + m.weight, 0);
    const perUnit = Math.max(1, Math.min(VNODES, Math.floor(MAX_RING / Math.max(1, total))));
    // hash · 2^16 + owner is exact in a double (< 2^48), so one native numeric sort orders the ring.
    const packed = new Float64Array(members.reduce((s, m) => s + m.weight * perUnit, 0));
    let k = 0;
    members.forEach((m, i) => {
      for (let v = 0; v < m.weight * perUnit; v++) packed[k++] = hash32(`${ids[i]}_${v}`) * 65536 + i;
    });
    packed.sort();
    this.points = new Uint32Array(packed.length);
    this.owners = new Uint16Array(packed.length);
    for (let j = 0; j < packed.length; j++) {
      const owner = packed[j]! % 65536;
      this.owners[j] = owner;
      this.points[j] = (packed[j]! - owner) / 65536;
    }
    this.fallback = new RoundRobin(members);
    this.size = members.length;
  }

  /** Without a key (the header or cookie is absent) the request is balanced round-robin. */
  pick(eligible: Eligible, key?: string): number {
    if (key === undefined) return this.fallback.pick(eligible);
    return this.lookup(hash32(key), eligible);
  }

  /** Owner of the first point at or after h, skipping ineligible owners; -1 when none is eligible. */
  lookup(h: number, eligible: Eligible): number {
    const pts = this.points;
    const n = pts.length;
    if (n === 0) return -1;
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (pts[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    const first = this.owners[lo % n]!;
    if (eligible(first)) return first;
    const seen = new Set<number>([first]);
    for (let k = 1; k < n; k++) {
      const owner = this.owners[(lo + k) % n]!;
      if (eligible(owner)) return owner;
      seen.add(owner);
      if (seen.size === this.size) break;
    }
    return -1;
  }
}

export type BalanceKind = 'roundRobin' | 'leastRequest' | 'random' | 'hash';

export function createBalancer(kind: BalanceKind, members: readonly Weighted[], ids: readonly string[], rng: Rng = Math.random): Balancer {
  switch (kind) {
    case 'leastRequest':
      return new LeastRequest(members, rng);
    case 'random':
      return new RandomPick(members, rng);
    case 'hash':
      return new RingHash(members, ids);
    default:
      return new RoundRobin(members);
  }
}
