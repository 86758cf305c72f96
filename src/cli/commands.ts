// Which file registers which commands, and the program built from them. No side effects: main.ts
// runs the program, the unit test checks the lists.
import { Command } from 'commander';

type Register = (program: Command) => void;

/** Each file of commands, with the commands it registers. A command loads only its own file (and
 *  what its action imports), so `pgarbiter status` starts without pg or prom-client; help,
 *  --version and an unknown command load them all. test/unit/cli-commands.test.ts keeps the lists
 *  true. */
export const COMMAND_GROUPS: { commands: readonly string[]; load: () => Promise<Register> }[] = [
  { commands: ['demo'], load: async () => (await import('./demo.js')).registerDemoCommand },
  { commands: ['lab'], load: async () => (await import('./lab.js')).registerLabCommands },
  {
    commands: ['agent', 'arbiter', 'init'],
    load: async () => (await import('./daemons.js')).registerDaemonCommands,
  },
  { commands: ['certs'], load: async () => (await import('./certs.js')).registerCertsCommands },
  {
    commands: ['status', 'history', 'switchover', 'failover', 'maintenance', 'rejoin'],
    load: async () => (await import('./cluster.js')).registerClusterCommands,
  },
  {
    commands: ['writer', 'check', 'test-loss'],
    load: async () => (await import('./workload.js')).registerWorkloadCommands,
  },
  { commands: ['dashboard'], load: async () => (await import('./dashboard.js')).registerDashboardCommand },
  { commands: ['compose-config'], load: async () => (await import('./compose.js')).registerComposeCommands },
  { commands: ['soak', 'soak-sample'], load: async () => (await import('./soak.js')).registerSoakCommand },
];

/** The program with the commands of `command`'s group, with none for `--version`, or with every
 *  command (help, an unknown command). */
export async function buildProgram(command?: string): Promise<Command> {
  const program = new Command('pgarbiter')
    .description(
      'PostgreSQL primary + hot standby with an arbiter: automatic failover, self-fencing and rejoin. ' +
        'Try it on a built-in lab of network namespaces: `pgarbiter demo`.',
    )
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)');
  if (command === '--version' || command === '-V') return program;
  const own = COMMAND_GROUPS.filter((g) => command !== undefined && g.commands.includes(command));
  for (const g of own.length ? own : COMMAND_GROUPS) (await g.load())(program);
  return program;
}
