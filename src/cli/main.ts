#!/usr/bin/env node
// pgarbiter's command line: each group of commands registers itself from its own file.
import './daemon-v8.js';
import { CommanderError } from 'commander';
import { errColor as pc } from '../util/color.js';
import { UserError } from '../util/errors.js';
import { buildProgram } from './commands.js';

export async function main(argv: string[]): Promise<number> {
  try {
    const program = await buildProgram(argv[2]);
    program.exitOverride();
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    if (e instanceof UserError) {
      process.stderr.write(`${pc.red('error:')} ${e.message}\n`);
      return e.exitCode;
    }
    process.stderr.write(`${pc.red('error:')} ${(e as Error).stack ?? e}\n`);
    return 2;
  }
}

// A reader that went away (`pgarbiter lab status --json | head`) is not an error of ours.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

main(process.argv).then(
  (code) => {
    process.exitCode = code;
    // After an interrupt the command has cleaned up: abandoned waits must not hold the exit.
    if (code === 130) process.exit(code);
  },
  (e) => {
    process.stderr.write(`${e}\n`);
    process.exitCode = 2;
  },
);
