// Every benchmark's command line: --help prints the usage, which is the header comment of the
// benchmark's own file, and bad input is one line on stderr with exit code 2, not a stack trace.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { parseTimingSet, TIMING_PROFILES, type TimingProfile, type TimingSet } from '../src/config.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** A bad flag or value: one line, exit 2. */
export function badArg(message: string): never {
  process.stderr.write(`error: ${message} (run with --help for usage)\n`);
  process.exit(2);
}

/** The leading `//` comment of a benchmark's source (dist/bench/x.js -> bench/x.ts: tsc drops a
 *  header that sits on an elided type-only import): what it does and its flags. */
export function headerComment(fileUrl: string): string {
  const source = fileURLToPath(fileUrl).replace(/\/dist\/bench\/([^/]+)\.js$/, '/bench/$1.ts');
  const lines = readFileSync(source, 'utf8').split('\n');
  const end = lines.findIndex((l) => !l.startsWith('//'));
  return lines
    .slice(0, end === -1 ? lines.length : end)
    .map((l) => l.replace(/^\/\/ ?/, ''))
    .join('\n');
}

/** The parsed flags of the benchmark at `fileUrl` (pass `import.meta.url`); exits after --help or on
 *  an unknown flag or a missing value. */
export function benchArgs<const O extends Options>(fileUrl: string, options: O) {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${headerComment(fileUrl)}\n`);
    process.exit(0);
  }
  try {
    return parseArgs({ args, options, strict: true }).values;
  } catch (e) {
    return badArg((e as Error).message);
  }
}

/** A --timing value: one of the profiles, or exit 2. */
export function profileArg(raw: string): TimingProfile {
  if (!(raw in TIMING_PROFILES)) badArg(`--timing ${raw}: use ${Object.keys(TIMING_PROFILES).join(' or ')}`);
  return raw as TimingProfile;
}

/** --timing-set over `profile` (see `pgarbiter lab up --help`); undefined when not given. */
export function timingSetArg(raw: string | undefined, profile: TimingProfile): TimingSet | undefined {
  if (raw === undefined) return undefined;
  try {
    return parseTimingSet(raw, profile);
  } catch (e) {
    return badArg((e as Error).message);
  }
}
