// One colour decision for the whole CLI. picocolors' own default also colours whenever the CI
// variable is set, which puts escape codes into logs and into output that scripts parse; here
// colour follows the stream it is written to: NO_COLOR wins, FORCE_COLOR forces, else a terminal.
import type { WriteStream } from 'node:tty';
import pc from 'picocolors';

export function wantsColor(
  stream: Pick<WriteStream, 'isTTY'>,
  env: NodeJS.ProcessEnv = process.env,
): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined) return env.FORCE_COLOR !== '0' && env.FORCE_COLOR !== 'false';
  return stream.isTTY === true && env.TERM !== 'dumb';
}

/** Colours for text written to stdout. */
export const color = pc.createColors(wantsColor(process.stdout));
/** Colours for text written to stderr (errors, progress). */
export const errColor = pc.createColors(wantsColor(process.stderr));
