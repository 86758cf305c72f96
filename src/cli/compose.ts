// `pgarbiter compose-config`: writes the container deployment's configs and secrets (see
// src/deploy/compose.ts). docker-compose.yml runs it as its one-shot `config` service.
import type { Command } from 'commander';
import {
  assertPortsFree,
  COMPOSE_DEFAULT_NET,
  deploymentExists,
  parsePortList,
  validateNet,
  writeComposeDeployment,
} from '../deploy/compose.js';
import { parseSync } from '../scenario/test-loss.js';
import { osUserIds } from '../util/os-user.js';

export function registerComposeCommands(program: Command): void {
  program
    .command('compose-config')
    .summary("write the container deployment's configs, secrets and certificates")
    .description(
      "Write the container deployment's configs (pg-master, pg-slave, arbiter, the host's client.yaml, HAProxy) " +
        "with newly generated secrets, the floating VIP (NET.10 on eth0, named in the database nodes' certificates), a CA and one TLS key and certificate per member into a directory that holds none; keep a complete one; refuse a partial one.",
    )
    .requiredOption('--dir <dir>', 'the deployment directory')
    .option('--net <a.b.c>', 'first three octets of the compose network (a /24)', COMPOSE_DEFAULT_NET)
    .option('--sync <mode>', 'synchronous_commit of a new deployment', 'remote_apply')
    .option(
      '--member-user <name>',
      'the OS user the members run as: it owns their configs and keys (mode 0600)',
      'postgres',
    )
    .option(
      '--free-ports <list>',
      'ADDRESS:PORT,...: refuse a new deployment when one of these (the published ports) is in use on this host',
    )
    .action(async (o: { dir: string; net: string; sync: string; memberUser: string; freePorts?: string }) => {
      if (o.freePorts && !deploymentExists(o.dir)) await assertPortsFree(parsePortList(o.freePorts));
      const r = await writeComposeDeployment(
        o.dir,
        { net: validateNet(o.net), sync: parseSync(o.sync) },
        osUserIds(o.memberUser),
      );
      process.stdout.write(
        r === 'written'
          ? `compose-config: new deployment in ${o.dir} (network ${o.net}.0/24, synchronous_commit=${o.sync}, new secrets)\n`
          : `compose-config: keeping the deployment in ${o.dir}\n`,
      );
    });
}
