#!/usr/bin/env node
// pgarbiter's command line: each group of commands registers itself from its own file.
import { Command, CommanderError } from 'commander';
import { errColor as pc } from '../util/color.js';
import { UserError } from '../util/errors.js';
import { registerCertsCommands } from './certs.js';
import { registerClusterCommands } from './cluster.js';
import { registerDaemonCommands } from './daemons.js';
import { registerDashboardCommand } from './dashboard.js';
import { registerDemoCommand } from './demo.js';
import { registerLabCommands } from './lab.js';
import { registerWorkloadCommands } from './workload.js';

export function buildProgram(): Command {
  const program = new Command('pgarbiter')
    .description(
      'PostgreSQL primary + hot standby with an arbiter: automatic failover, self-fencing and rejoin.\n' +
        'Try it on a built-in lab of network namespaces: `pgarbiter demo`.',
    )
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)');
  registerDemoCommand(program);
  registerLabCommands(program);
  registerDaemonCommands(program);
  registerCertsCommands(program);
  registerClusterCommands(program);
  registerWorkloadCommands(program);
  registerDashboardCommand(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  program.exitOverride();
  try {
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
