// `pgarbiter lab ...`: the network-namespace lab (hosts pg1, pg2, arbiter, client).

import Table from 'cli-table3';
import { type Command, Option } from 'commander';
import { parseTimingSet, SYNC_MODES } from '../config.js';
import {
  assertHost,
  assertMemberHost,
  clientPsqlCommand,
  collectStage1,
  formatStage1,
  freeze,
  heal,
  hostArgv,
  ISOLATE_MODES,
  type IsolateMode,
  isolate,
  type Lab,
  type LabSettings,
  labDown,
  labStatus,
  labUp,
  loadLab,
  oneWay,
  partition,
  requireRoot,
  resolveIdentity,
  setLoss,
  showStage1,
  signalMemberDaemon,
  startMember,
  stopMember,
  thaw,
  unpartition,
  vipAddress,
} from '../lab/index.js';
import { color as pc } from '../util/color.js';
import { UserError } from '../util/errors.js';
import { runAttached } from '../util/exec.js';
import { interruptible } from '../util/interrupt.js';

interface IdFlags {
  prefix?: string;
  subnet?: string;
}

function withId(cmd: Command): Command {
  return cmd
    .option('--prefix <name>', 'lab name prefix (env PGARBITER_LAB_PREFIX, default pga)')
    .option('--subnet <cidr>', 'lab IPv4 /24 (env PGARBITER_LAB_SUBNET, default 10.213.0.0/24)');
}

/** The lab that is up under the resolved prefix; --subnet, if given, must match it. */
function openLab(flags: IdFlags): Lab {
  const id = resolveIdentity(flags);
  const lab = loadLab(id.prefix);
  if (flags.subnet && flags.subnet !== lab.subnet)
    throw new UserError(`lab "${lab.prefix}" runs on ${lab.subnet}, not ${flags.subnet}`);
  return lab;
}

const say = (line: string) => process.stdout.write(`${line}\n`);

export function registerLabCommands(program: Command): void {
  const lab = program
    .command('lab')
    .description('a lab of network namespaces: hosts pg1, pg2, arbiter, client on one virtual switch')
    .enablePositionalOptions();

  withId(lab.command('up'))
    .description(
      'create the lab, provision PostgreSQL (pg1 primary, pg2 hot standby), start arbiter and agents',
    )
    .option('--no-agents', 'do not start the arbiter and the agents')
    .addOption(new Option('--sync <mode>', 'synchronous_commit').choices(SYNC_MODES).default('remote_apply'))
    .addOption(
      new Option('--timing <profile>', 'agent timing profile')
        .choices(['default', 'fast'])
        .default('default'),
    )
    .option(
      '--timing-set <fields>',
      'timing fields over the profile, e.g. failover_timeout=2.5s,probe_interval=450 (a bare number is ms; the timing rule is checked)',
    )
    .addOption(
      new Option('--client-certs <mode>', 'mutual TLS on the APIs (config tls.client_certs)')
        .choices(['off', 'required'])
        .default('off'),
    )
    .addOption(
      new Option('--lease <mode>', "the primary's kernel-side lease (config lease:)")
        .choices(['on', 'off'])
        .default('on'),
    )
    .addOption(new Option('--no-postgres', 'network only (no PostgreSQL, no agents)').hideHelp())
    .option('--no-show', 'do not show stage 1 at the end')
    .action(
      async (
        o: IdFlags & Omit<Required<LabSettings>, 'timingSet'> & { show: boolean; timingSet?: string },
      ) => {
        const id = resolveIdentity(o);
        const timingSet = o.timingSet === undefined ? undefined : parseTimingSet(o.timingSet, o.timing);
        const r = await interruptible(
          {
            next: 'remove the half-built lab',
            done: `the half-built lab "${id.prefix}" was removed`,
            leftover: `run \`pgarbiter lab down --prefix ${id.prefix}\` to remove what is left`,
            undo: () => labDown(id.prefix, { say }),
          },
          (signal) => labUp({ ...o, ...id, timingSet, say, signal }),
        );
        say(
          pc.bold(
            r.reused
              ? `lab "${id.prefix}" is up (reused, ${r.seconds.toFixed(2)} s)`
              : `lab up: "${id.prefix}" on ${r.lab.subnet} ready in ${r.seconds.toFixed(2)} s${r.rebuilt ? ' (rebuilt)' : ''}`,
          ),
        );
        for (const h of Object.values(r.lab.hosts))
          say(`  ${h.name.padEnd(8)} ${h.address.padEnd(15)} netns ${h.ns}`);
        if (r.lab.postgres && o.show) {
          say('');
          say(formatStage1(await showStage1(r.lab)));
        }
      },
    );

  withId(lab.command('down'))
    .description('remove the lab: daemons, PostgreSQL, namespaces, its directory (also a half-built one)')
    .action(async (o: IdFlags) => {
      const id = resolveIdentity(o);
      const r = await labDown(id.prefix, { say });
      say(
        r.removed.length
          ? `lab down: "${id.prefix}" removed in ${r.seconds.toFixed(2)} s (${r.removed.length} items: ${r.removed.join(', ')})`
          : `lab down: nothing of lab "${id.prefix}" was left (${r.seconds.toFixed(2)} s)`,
      );
    });

  withId(lab.command('status'))
    .description('hosts, addresses, link state, bridge, what runs')
    .option('--json', 'machine-readable output')
    .action(async (o: IdFlags & { json?: boolean }) => {
      requireRoot('lab status');
      const l = openLab(o);
      const hosts = await labStatus(l);
      if (o.json) {
        say(
          JSON.stringify(
            {
              prefix: l.prefix,
              subnet: l.subnet,
              complete: l.complete,
              partitions: l.partitions,
              losses: l.losses ?? {},
              oneWay: l.oneWay ?? [],
              hosts,
            },
            null,
            2,
          ),
        );
        return;
      }
      const t = new Table({
        head: ['host', 'address', 'netns', 'e0', 'switch port', 'postgres', 'VIP', 'daemons'],
        style: { head: [], border: [] },
      });
      for (const h of hosts)
        t.push([
          h.host,
          h.address,
          h.present ? h.ns : pc.red(`${h.ns} (missing)`),
          h.link === 'up' ? pc.green('up') : pc.red(h.link),
          h.bridge === 'br0' ? 'br0' : pc.red(h.bridge ?? 'none'),
          h.postgres
            ? h.postgres.pid
              ? `pid ${h.postgres.pid}, ${h.postgres.state ?? '?'}`
              : pc.red('not running')
            : '',
          h.vip ? pc.green(vipAddress(l.subnet)) : '',
          h.daemons
            .map((d) => `${d.name} ${d.pid} ${d.alive ? pc.green('alive') : pc.red('dead')}`)
            .join(', '),
        ]);
      say(
        `lab "${l.prefix}" on ${l.subnet}${l.complete ? '' : pc.red(' (half-built: run `pgarbiter lab down`)')}`,
      );
      say(t.toString());
      const holders = hosts.filter((h) => h.vip).map((h) => h.host);
      say(
        `VIP ${vipAddress(l.subnet)}: ${holders.length === 0 ? 'held by no host' : holders.length === 1 ? `on ${holders[0]}` : pc.red(`on ${holders.join(' AND ')}`)}`,
      );
      if (l.partitions.length) say(`partitions: ${l.partitions.map(([a, b]) => `${a} x ${b}`).join(', ')}`);
      const losses = Object.entries(l.losses ?? {});
      if (losses.length) say(`packet loss: ${losses.map(([h, p]) => `${h} ${p} %`).join(', ')}`);
      if (l.oneWay?.length) say(`one-way drops: ${l.oneWay.map(([a, b]) => `${a} -> ${b}`).join(', ')}`);
    });

  withId(lab.command('isolate'))
    .description('make a host unreachable (failure step 2.2)')
    .argument('<host>', 'pg1, pg2, arbiter or client')
    .addOption(
      new Option('--mode <mode>', 'link-down: its interface down; subnet: moved to an isolated bridge')
        .choices(ISOLATE_MODES)
        .default('link-down'),
    )
    .action(async (host: string, o: IdFlags & { mode: IsolateMode }) => {
      requireRoot('lab isolate');
      const l = openLab(o);
      const h = assertHost(host);
      await isolate(l, h, o.mode);
      say(
        `${h} isolated (${o.mode === 'link-down' ? `e0 down in ${l.hosts[h].ns}` : `${l.hosts[h].port} moved to br-iso`})`,
      );
    });

  withId(lab.command('heal'))
    .description('undo `lab isolate` (both modes)')
    .argument('<host>')
    .action(async (host: string, o: IdFlags) => {
      requireRoot('lab heal');
      const l = openLab(o);
      const h = assertHost(host);
      await heal(l, h);
      say(`${h} healed (e0 up, on br0)`);
    });

  withId(lab.command('partition'))
    .description('drop all traffic between two hosts (others unaffected)')
    .argument('<a>')
    .argument('<b>')
    .action(async (a: string, b: string, o: IdFlags) => {
      requireRoot('lab partition');
      const l = openLab(o);
      await partition(l, assertHost(a), assertHost(b));
      say(`partitioned ${a} x ${b}`);
    });

  withId(lab.command('unpartition'))
    .description('remove the partition between two hosts, or all partitions')
    .argument('[a]')
    .argument('[b]')
    .action(async (a: string | undefined, b: string | undefined, o: IdFlags) => {
      requireRoot('lab unpartition');
      const l = openLab(o);
      if ((a && !b) || (!a && b)) throw new UserError('give two hosts, or none to remove every partition');
      await unpartition(l, a ? assertHost(a) : undefined, b ? assertHost(b) : undefined);
      say(a ? `partition ${a} x ${b} removed` : 'all partitions removed');
    });

  withId(lab.command('oneway'))
    .description('drop every packet from host A to host B (B to A still passes); --off removes it')
    .argument('<a>')
    .argument('<b>')
    .option('--off', 'remove the one-way drop from A to B')
    .action(async (a: string, b: string, o: IdFlags & { off?: boolean }) => {
      requireRoot('lab oneway');
      const l = openLab(o);
      await oneWay(l, assertHost(a), assertHost(b), !o.off);
      say(o.off ? `one-way drop ${a} -> ${b} removed` : `dropping every packet from ${a} to ${b}`);
    });

  withId(lab.command('loss'))
    .description('drop PERCENT % of the packets to and from a host, at random, in the switch (0 ends it)')
    .argument('<host>')
    .argument('<percent>', 'a whole number from 0 to 100')
    .action(async (host: string, percent: string, o: IdFlags) => {
      requireRoot('lab loss');
      const l = openLab(o);
      const h = assertHost(host);
      if (!/^\d+$/.test(percent))
        throw new UserError(`packet loss "${percent}": give a whole percentage from 0 to 100`);
      await setLoss(l, h, Number(percent));
      say(
        Number(percent) === 0 ? `${h}: no packet loss` : `${h}: ${Number(percent)} % of its packets dropped`,
      );
    });

  withId(lab.command('freeze'))
    .description('SIGSTOP every process of a host (--agent: only its agent or arbiter daemon)')
    .argument('<host>')
    .option('--agent', "only the host's daemon (agent, or the arbiter): PostgreSQL keeps running")
    .action(async (host: string, o: IdFlags & { agent?: boolean }) => {
      requireRoot('lab freeze');
      const l = openLab(o);
      if (o.agent) {
        const pid = signalMemberDaemon(l, assertMemberHost(assertHost(host)), 'SIGSTOP');
        say(`${host}: daemon (pid ${pid}) frozen`);
        return;
      }
      const pids = await freeze(l, assertHost(host));
      say(`${host} frozen (${pids.length} processes stopped)`);
    });

  withId(lab.command('thaw'))
    .description('SIGCONT every process of a host (--agent: only its daemon)')
    .argument('<host>')
    .option('--agent', "only the host's daemon (agent, or the arbiter)")
    .action(async (host: string, o: IdFlags & { agent?: boolean }) => {
      requireRoot('lab thaw');
      const l = openLab(o);
      if (o.agent) {
        const pid = signalMemberDaemon(l, assertMemberHost(assertHost(host)), 'SIGCONT');
        say(`${host}: daemon (pid ${pid}) thawed`);
        return;
      }
      const pids = await thaw(l, assertHost(host));
      say(`${host} thawed (${pids.length} processes continued)`);
    });

  withId(lab.command('stop'))
    .description(
      "stop a member: a database host's agent and PostgreSQL (both by default, as `docker compose stop` did), or the arbiter",
    )
    .argument('<host>', 'pg1, pg2 or arbiter')
    .option('--postgres', 'only PostgreSQL (a running agent restarts it: the "PostgreSQL killed" fault)')
    .option('--agent', 'only the agent (PostgreSQL keeps running unsupervised)')
    .option('--kill', 'kill -9 at once instead of a clean stop (SIGTERM; pg_ctl stop -m fast)')
    .action(async (host: string, o: IdFlags & { postgres?: boolean; agent?: boolean; kill?: boolean }) => {
      requireRoot('lab stop');
      if (o.postgres && o.agent)
        throw new UserError('--postgres and --agent together is the default: give neither');
      const l = openLab(o);
      const member = assertMemberHost(assertHost(host));
      const part = o.postgres ? 'postgres' : o.agent ? 'agent' : 'both';
      say(`${host}: ${await stopMember(l, member, { part, kill: o.kill })}`);
    });

  withId(lab.command('start'))
    .description('start a member again: the agent of pg1/pg2 (it starts PostgreSQL itself), or the arbiter')
    .argument('<host>', 'pg1, pg2 or arbiter')
    .action(async (host: string, o: IdFlags) => {
      requireRoot('lab start');
      const l = openLab(o);
      say(await startMember(l, assertMemberHost(assertHost(host))));
    });

  withId(lab.command('exec'))
    .description('run a command inside a host: lab exec HOST -- CMD...')
    .argument('<host>')
    .argument('<cmd...>')
    .option('--timeout <seconds>', 'kill the command after this long', '3600')
    .passThroughOptions()
    .action(async (host: string, cmd: string[], o: IdFlags & { timeout: string }) => {
      requireRoot('lab exec');
      const l = openLab(o);
      process.exitCode = await runAttached(hostArgv(l, assertHost(host), cmd), {
        timeoutMs: Number(o.timeout) * 1000,
      });
    });

  withId(lab.command('psql'))
    .description(
      'psql on the client host, over TCP to HOST (default pg1) as the app role: lab psql [HOST] [psql args]',
    )
    .argument('[args...]', 'HOST (pg1 or pg2) then psql arguments')
    .option('--from <host>', 'the host psql runs on', 'client')
    .option('--timeout <seconds>', 'kill psql after this long', '3600')
    .allowUnknownOption()
    .passThroughOptions()
    .action(async (args: string[], o: IdFlags & { from: string; timeout: string }) => {
      requireRoot('lab psql');
      const l = openLab(o);
      const target = args[0] && !args[0].startsWith('-') ? assertHost(args.shift()!) : 'pg1';
      if (target !== 'pg1' && target !== 'pg2')
        throw new UserError(`${target} runs no PostgreSQL: use pg1 or pg2`);
      if (!l.postgres)
        throw new UserError(
          `lab "${l.prefix}" was built without PostgreSQL: run \`pgarbiter lab down\` and \`pgarbiter lab up\``,
        );
      const { argv, env } = clientPsqlCommand(l, target, args, { from: assertHost(o.from) });
      process.exitCode = await runAttached(argv, { timeoutMs: Number(o.timeout) * 1000, env });
    });

  withId(lab.command('show'))
    .description(
      'show stage 1 from the client host: primary read/write, standby read-only and current, replication views',
    )
    .option('--json', 'machine-readable output')
    .action(async (o: IdFlags & { json?: boolean }) => {
      requireRoot('lab show');
      const l = openLab(o);
      if (!l.postgres) throw new UserError(`lab "${l.prefix}" was built without PostgreSQL`);
      const r = await showStage1(l);
      say(o.json ? JSON.stringify(r, null, 2) : formatStage1(r));
    });

  // Internal: runs inside the client namespace (Node cannot setns); prints JSON for `lab show`.
  lab
    .command('stage1-json', { hidden: true })
    .option('--prefix <name>')
    .action(async (o: IdFlags) => {
      say(JSON.stringify(await collectStage1(loadLab(resolveIdentity(o).prefix))));
    });
}
