// The one summary every benchmark prints of a sample: min, median and max.
import { type Lab, labDown } from '../src/lab/index.js';

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

/** Runs a benchmark's body on its lab: a clean run removes the lab, a failed one keeps it and its
 *  logs for a person to look at, and says how to remove it. Ctrl-C (or SIGTERM) removes the lab and
 *  exits with 130; a second signal exits at once. */
export async function keepLabOnFailure<T>(lab: Lab, body: () => Promise<T>): Promise<T> {
  const onSignal = (sig: NodeJS.Signals) => {
    process.stderr.write(`\ninterrupted (${sig}): removing lab "${lab.prefix}"\n`);
    labDown(lab.prefix).then(
      () => process.exit(130),
      (e) => {
        process.stderr.write(`lab down failed: ${(e as Error).message}\n`);
        process.exit(130);
      },
    );
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let result: T;
  try {
    result = await body();
  } catch (e) {
    process.stderr.write(
      `lab "${lab.prefix}" kept for inspection (${lab.dir}); remove it with: pgarbiter lab down --prefix ${lab.prefix}\n`,
    );
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  await labDown(lab.prefix);
  return result;
}
