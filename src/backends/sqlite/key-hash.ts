/**
 * The ledger's hashing: a 53-bit hash of (tenant, key), and a blocked Bloom filter over such
 * hashes, one per sorted run (see ledger.ts).
 */

/** 2^53: hashes are non-negative safe integers, so that SQLite and JS agree on them. */
export const SPACE = 2 ** 53;
const TWO32 = 2 ** 32;
const BITS_PER_KEY = 14;

/** Two 32-bit murmur3-style hashes of `tenant \0 key`, combined into 53 bits. */
export function keyHash(tenant: string, key: string): number {
  let a = 0x9747b28c;
  let b = 0x5bd1e995;
  const mix = (c: number): void => {
    a = Math.imul(a ^ c, 0xcc9e2d51);
    a = (a << 15) | (a >>> 17);
    b = Math.imul(b ^ c, 0x1b873593);
    b = (b << 13) | (b >>> 19);
  };
  for (let i = 0; i < tenant.length; i++) mix(tenant.charCodeAt(i));
  mix(0);
  for (let i = 0; i < key.length; i++) mix(key.charCodeAt(i));
  a = fmix(a ^ key.length);
  b = fmix(b ^ Math.imul(tenant.length + 1, 0x85ebca6b) ^ a);
  return (a & 0x1fffff) * TWO32 + (b >>> 0);
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}

/** A blocked Bloom filter over 53-bit hashes: 512-bit blocks, 8 bits per key. */
export class BlockedBloom {
  private readonly words: Uint32Array;
  private readonly blocks: number;

  constructor(keys: number, saved?: Uint8Array) {
    this.blocks = Math.max(1, Math.ceil((keys * BITS_PER_KEY) / 512));
    this.words = new Uint32Array(this.blocks * 16);
    if (saved && saved.byteLength === this.words.byteLength) new Uint8Array(this.words.buffer).set(saved);
  }

  /** Whether `saved` (from toBuffer) fits a filter for `keys` keys. */
  static fits(keys: number, saved: Uint8Array): boolean {
    return saved.byteLength === Math.max(1, Math.ceil((keys * BITS_PER_KEY) / 512)) * 64;
  }

  get bytes(): number {
    return this.words.byteLength;
  }

  /** The filter's bits, to be stored with its run (little-endian words, as on every platform Node runs on here). */
  toBuffer(): Buffer {
    return Buffer.from(this.words.buffer, this.words.byteOffset, this.words.byteLength);
  }

  add(h: number): void {
    const lo = h % TWO32;
    const hi = (h - lo) / TWO32;
    const base = Math.floor((lo / TWO32) * this.blocks) * 16;
    let x = fmix(lo ^ Math.imul(hi, 0x9e3779b1));
    const y = fmix(x ^ 0x27d4eb2f) | 1;
    for (let i = 0; i < 8; i++) {
      const bit = x & 511;
      this.words[base + (bit >>> 5)]! |= 1 << (bit & 31);
      x = (x + y) | 0;
    }
  }

  has(h: number): boolean {
    const lo = h % TWO32;
    const hi = (h - lo) / TWO32;
    const base = Math.floor((lo / TWO32) * this.blocks) * 16;
    let x = fmix(lo ^ Math.imul(hi, 0x9e3779b1));
    const y = fmix(x ^ 0x27d4eb2f) | 1;
    for (let i = 0; i < 8; i++) {
      const bit = x & 511;
      if ((this.words[base + (bit >>> 5)]! & (1 << (bit & 31))) === 0) return false;
      x = (x + y) | 0;
    }
    return true;
  }
}
