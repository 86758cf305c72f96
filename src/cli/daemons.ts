// The commands that run on a cluster member: init (bootstrap a node), agent, arbiter. Each action
// imports its own code: an agent does not hold the arbiter's in memory for months, nor init's.
import type { Command } from 'commander';
import { loadConfig, readSecretFile } from '../config.js';
import { UserError } from '../util/errors.js';
import { collectHeapEvery } from '../util/heap.js';

export function registerDaemonCommands(program: Command): void {
  registerDaemonRunners(program);
  program
    .command('init')
    .summary('bootstrap this database node (initdb on the primary, base backup on the standby)')
    .description(
      'Bootstrap this database node: on the initial primary initdb + start + roles; on the other node ' +
        'a base backup from the primary, then start as hot standby. Does nothing to a node that has data.',
    )
    .requiredOption('-c, --config <file>', 'node config (YAML)')
    .option(
      '--demo-app-password-file <file>',
      'create the demo role "app" (password from this file, mode 0600) and demo tables',
    )
    .option('--demo-app-password-env <var>', 'the same, the password from this environment variable')
    .action(async (opts: { config: string; demoAppPasswordEnv?: string; demoAppPasswordFile?: string }) => {
      const cfg = loadConfig(opts.config);
      if (!cfg.nodes.some((n) => n.name === cfg.node))
        throw new UserError(`init runs on a database node; ${cfg.node} is the arbiter (it needs no init)`);
      let demoAppPassword: string | undefined;
      if (opts.demoAppPasswordEnv && opts.demoAppPasswordFile)
        throw new UserError('give either --demo-app-password-file or --demo-app-password-env, not both');
      if (opts.demoAppPasswordFile)
        demoAppPassword = readSecretFile(opts.demoAppPasswordFile, '--demo-app-password-file');
      if (opts.demoAppPasswordEnv) {
        demoAppPassword = process.env[opts.demoAppPasswordEnv];
        if (!demoAppPassword) throw new UserError(`environment variable ${opts.demoAppPasswordEnv} is empty`);
      }
      const { PgControl } = await import('../postgres/control.js');
      const { initNode } = await import('../postgres/provision.js');
      const ctl = new PgControl(cfg);
      const result = await initNode(ctl, { progress: (m) => process.stderr.write(`${m}\n`) });
      if (result === 'primary' && demoAppPassword) {
        const { closeClient, makeClient } = await import('../postgres/client.js');
        const { createDemoApp } = await import('../workload/schema.js');
        const client = makeClient(ctl.local());
        await client.connect();
        try {
          await createDemoApp(client, demoAppPassword);
        } finally {
          await closeClient(client);
        }
      }
      process.stdout.write(`${JSON.stringify({ node: cfg.node, result })}\n`);
    });
}

export function registerDaemonRunners(program: Command): void {
  program
    .command('agent')
    .summary('run the agent of a database node')
    .description(
      'Run the agent of a database node (primary or standby): probes, fencing, promotion with the ' +
        "arbiter's grant, sync-replication fallback, rejoin. Logs JSON lines to stdout (and log_file).",
    )
    .requiredOption('-c, --config <file>', 'node config (YAML)')
    .action(async (opts: { config: string }) => {
      const cfg = loadConfig(opts.config);
      if (!cfg.nodes.some((n) => n.name === cfg.node))
        throw new UserError(`${cfg.node} is the arbiter: run \`pgarbiter arbiter --config ${opts.config}\``);
      const { Agent } = await import('../agent/daemon.js');
      collectHeapEvery();
      await new Agent(cfg).run();
    });
  program
    .command('arbiter')
    .summary('run the arbiter')
    .description(
      'Run the arbiter: witness of the primary, keeper of the cluster record and its terms, grants promotions.',
    )
    .requiredOption('-c, --config <file>', 'arbiter config (YAML)')
    .action(async (opts: { config: string }) => {
      const cfg = loadConfig(opts.config);
      if (cfg.node !== cfg.arbiter.name)
        throw new UserError(
          `${cfg.node} is a database node: run \`pgarbiter agent --config ${opts.config}\``,
        );
      const { runArbiter } = await import('../arbiter/daemon.js');
      collectHeapEvery();
      await runArbiter(cfg);
    });
}
