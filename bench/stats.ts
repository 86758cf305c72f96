// The one summary every benchmark prints of a sample: min, median and max.

export interface Spread {
  min: number;
  median: number;
  max: number;
}

/** min, median and max of `xs`; null for an empty sample. */
export function spread(xs: readonly number[]): Spread | null {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return null;
  const mid = Math.floor(s.length / 2);
  return { min: s[0]!, median: s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2, max: s[s.length - 1]! };
}

/** "min A  median B  max C", each through `fmt`; "none" for an empty sample. */
export function spreadText(xs: readonly number[], fmt: (x: number) => string): string {
  const s = spread(xs);
  return s ? `min ${fmt(s.min)}  median ${fmt(s.median)}  max ${fmt(s.max)}` : 'none';
}
