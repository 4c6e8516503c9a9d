/** mulberry32: floats in [0, 1) from a seed (seeded.mjs). */
export function seeded(seed: number): () => number;
