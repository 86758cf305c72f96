// One seeded PRNG for everything that draws at random and must replay from its seed: the soak's
// schedules, the simulator's schedules, the hostile-input fuzz.

/** mulberry32: a small, fast 32-bit PRNG; good enough to draw faults, and identical everywhere. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
