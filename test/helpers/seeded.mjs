// mulberry32: a small seeded generator of floats in [0, 1), so that a seed reproduces a run
// (the chaos test's corpus and kill delays, the fault proxy's probabilistic faults, the
// bench's corpus on every machine). Plain JS: node scripts and TypeScript tests both load it.
export function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
