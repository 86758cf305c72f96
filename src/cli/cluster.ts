// Commands a person runs against a cluster: status, switchover, failover --force, maintenance,
// rejoin. With --config they talk to the members named there; without it, to the lab: `status`
// from this process through the lab's API sockets when they are live, the others (and `status`
// without them) by running themselves again inside the lab's client host, since only code inside
// the lab reaches its addresses.
import type { Command } from 'commander';
import type { ClusterMembers, SocketOf } from '../api/client.js';
import type { Config } from '../config.js';
// Only what the lab's re-run and the sockets need is loaded up front: the commands' own modules
// (config and protocol validation, the HTTP client, tables) are imported by their actions.
import { labApiSockets, labClusterMembers } from '../lab/api-access.js';
import { hostArgv, selfArgv } from '../lab/daemon.js';
import { configPath, loadLab } from '../lab/state.js';
import { color as pc } from '../util/color.js';
import { UserError } from '../util/errors.js';
import { runAttached, sleep } from '../util/exec.js';

interface Common {
  config?: string;
  prefix?: string;
  json?: boolean;
}

/** The lab reached from this process: its members (lab.json's, as the client host's config names
 *  them) through their API sockets (lab/api-access.ts). Null with --config, or when the lab has no
 *  live sockets (HAProxy down, a lab built before them): the caller then re-runs inside the lab. */
function labThroughSockets(opts: Common): { members: ClusterMembers; socketOf: SocketOf } | null {
  if (opts.config) return null;
  const lab = loadLab(opts.prefix);
  const sockets = labApiSockets(lab);
  if (!sockets) return null;
  return { members: labClusterMembers(lab), socketOf: (host) => sockets.get(host) };
}

/** The cluster config, or null after re-running this command inside the lab's client host. */
async function clusterConfig(opts: Common): Promise<Config | null> {
  if (opts.config) return (await import('../config.js')).loadConfig(opts.config);
  const lab = loadLab(opts.prefix);
  const args = process.argv.slice(2);
  const code = await runAttached(
    hostArgv(lab, 'client', selfArgv(...args, '--config', configPath(lab, 'client'))),
    {
      timeoutMs: 10 * 60_000,
    },
  );
  process.exitCode = code;
  return null;
}

function withCommon(cmd: Command, labWay = 'run from its client host'): Command {
  return cmd
    .option('-c, --config <file>', `cluster config (YAML); default: the lab, ${labWay}`)
    .option('--prefix <prefix>', 'lab name prefix (default: $PGARBITER_LAB_PREFIX or pga)');
}

export function registerClusterCommands(program: Command): void {
  withCommon(
    program
      .command('status')
      .summary('the cluster in one table (roles, terms, LSNs, lag, fences, reachability)')
      .description(
        'The cluster in one table: each node, its role, state, term/timeline, LSN, lag, fence, reachability.',
      ),
    'through its API sockets (<lab dir>/api/*.sock; else run from its client host)',
  )
    .option('--json', 'machine-readable output')
    .option('-w, --watch <seconds>', 'refresh every N seconds (Ctrl-C to stop)')
    .action(async (opts: Common & { watch?: string }) => {
      const watch = opts.watch ? Number(opts.watch) : 0;
      if (opts.watch && !(watch > 0))
        throw new UserError(`--watch needs a positive number of seconds, not "${opts.watch}"`);
      const direct = labThroughSockets(opts);
      const cfg = direct?.members ?? (await clusterConfig(opts));
      if (!cfg) return;
      const [{ fetchClusterView }, { renderStatus }] = await Promise.all([
        import('../cluster/view.js'),
        import('../cluster/status.js'),
      ]);
      for (let i = 0; i < (watch ? 100_000 : 1); i++) {
        // The lab's HAProxy went away while watching: carry on from inside the lab.
        if (direct && i > 0 && !labApiSockets(loadLab(opts.prefix))) {
          await clusterConfig(opts);
          return;
        }
        const view = await fetchClusterView(cfg, undefined, direct?.socketOf);
        if (opts.json) process.stdout.write(`${JSON.stringify(view, null, 2)}\n`);
        else process.stdout.write(`${watch ? '\x1b[2J\x1b[H' : ''}${renderStatus(view)}\n`);
        if (!view.arbiter.reachable && view.nodes.every((n) => !n.reachable)) process.exitCode = 1;
        if (watch) await sleep(watch * 1000);
      }
    });

  withCommon(
    program
      .command('history')
      .summary("the cluster's events (grants, fences, promotions, rejoins) by time")
      .description(
        "The cluster's events, merged by time: the arbiter's grants, refusals, handovers, maintenance, forced " +
          "failovers, adoptions, and each agent's fences, unfences, promotions and rejoins.",
      ),
  )
    .option('--json', 'machine-readable output: {entries, unreachable}')
    .option('-n, --limit <count>', 'only the last COUNT events')
    .action(async (opts: Common & { limit?: string }) => {
      const limit = opts.limit === undefined ? undefined : Number(opts.limit);
      if (limit !== undefined && !(Number.isInteger(limit) && limit > 0))
        throw new UserError(`--limit needs a positive whole number of events, not "${opts.limit}"`);
      const cfg = await clusterConfig(opts);
      if (!cfg) return;
      const { fetchClusterHistory, renderHistory } = await import('../cluster/history.js');
      const h = await fetchClusterHistory(cfg);
      if (limit !== undefined) h.entries = h.entries.slice(-limit);
      process.stdout.write(opts.json ? `${JSON.stringify(h, null, 2)}\n` : `${renderHistory(h)}\n`);
      if (h.unreachable.length === cfg.nodes.length + 1) {
        process.stderr.write('no member answered: no history\n');
        process.exitCode = 1;
      }
    });

  withCommon(
    program
      .command('switchover')
      .summary('planned role swap: no acknowledged write lost, a short write pause')
      .description('Planned role swap: no acknowledged write lost, a short write pause.'),
  )
    .option('--to <node>', 'the node to become primary (default: the standby)')
    .option('--timeout <seconds>', 'how long to wait for the new roles', '60')
    .option('--json', 'print the result as JSON')
    .action(async (opts: Common & { to?: string; timeout: string }) => {
      const cfg = await clusterConfig(opts);
      if (!cfg) return;
      const { switchover } = await import('../cluster/switchover.js');
      const r = await switchover(cfg, opts.to, Number(opts.timeout) * 1000, (m) =>
        process.stderr.write(`${m}\n`),
      );
      process.stdout.write(
        opts.json ? `${JSON.stringify(r)}\n` : `switchover done: ${r.from} -> ${r.to} in ${r.ms} ms\n`,
      );
    });

  withCommon(
    program
      .command('failover')
      .summary('forced failover, for when the automatic path refuses')
      .description(
        'Forced failover for when the automatic path refuses (standby not promotable, arbiter gone): through the ' +
          "arbiter when it answers, else through the node's agent (the arbiter adopts the new term when back).",
      ),
  )
    .requiredOption('--to <node>', 'the node to promote')
    .option('--force', 'required: acknowledge that writes acknowledged by the old primary may be lost')
    .action(async (opts: Common & { to: string; force?: boolean }) => {
      if (!opts.force)
        throw new UserError(
          'failover without the checks of the automatic path may lose acknowledged writes and, if the old primary still runs, ' +
            'make two primaries: repeat with --force if that is what you want',
        );
      const cfg = await clusterConfig(opts);
      if (!cfg) return;
      process.stderr.write(
        pc.red(
          `WARNING: forcing ${opts.to} to primary. Writes acknowledged by the old primary after its last sync may be lost.\n`,
        ),
      );
      const target = cfg.nodes.find((x) => x.name === opts.to);
      if (!target)
        throw new UserError(`unknown node "${opts.to}": one of ${cfg.nodes.map((x) => x.name).join(', ')}`);
      const { ApiClient } = await import('../api/client.js');
      const api = new ApiClient(cfg);
      const viaArbiter = await api.arbiterPost('forceFailover', { to: opts.to }, 3000);
      if (viaArbiter.answered) {
        if (!viaArbiter.body.ok) throw new UserError(`arbiter refused: ${viaArbiter.body.reason}`);
        process.stdout.write(`${viaArbiter.body.reason}\n`);
        return;
      }
      process.stderr.write(
        pc.red(
          `WARNING: arbiter at ${cfg.arbiter.host}: ${viaArbiter.body.reason}: promoting ${opts.to} through its agent. ` +
            'If the old primary still runs and serves clients, there are two primaries until it sees the new term.\n',
        ),
      );
      const r = await api.agentPost(target.host, 'forcePromote', 3000);
      if (!r.answered)
        throw new UserError(
          `neither the arbiter nor ${opts.to}'s agent answers (${r.body.reason}): nothing changed`,
        );
      if (!r.body.ok) throw new UserError(`${opts.to} refused: ${r.body.reason}`);
      process.stdout.write(`${r.body.reason} (the arbiter adopts the new term when it is back)\n`);
    });

  withCommon(
    program
      .command('maintenance')
      .summary('pause (on) or resume (off) automatic failover and restarts')
      .description(
        'Pause (on) or resume (off) automatic failover and PostgreSQL restarts (an isolated primary still fences); shown in status.',
      ),
  )
    .argument('<on|off>')
    .action(async (mode: string, opts: Common) => {
      if (mode !== 'on' && mode !== 'off')
        throw new UserError(`maintenance takes "on" or "off", not "${mode}"`);
      const cfg = await clusterConfig(opts);
      if (!cfg) return;
      const { ApiClient } = await import('../api/client.js');
      const r = await new ApiClient(cfg).arbiterPost('maintenance', { enabled: mode === 'on' }, 3000);
      if (!r.answered) throw new UserError(`arbiter at ${cfg.arbiter.host}: ${r.body.reason}`);
      if (!r.body.ok) throw new UserError(`arbiter refused: ${r.body.reason}`);
      process.stdout.write(`maintenance ${mode}: ${r.body.reason}\n`);
    });

  withCommon(
    program
      .command('rejoin')
      .summary('rewind a node and start it as standby of the current primary')
      .description('Rewind NODE and start it as standby of the current primary (rejoin: manual).'),
  )
    .argument('<node>')
    .action(async (node: string, opts: Common) => {
      const cfg = await clusterConfig(opts);
      if (!cfg) return;
      const n = cfg.nodes.find((x) => x.name === node);
      if (!n)
        throw new UserError(`unknown node "${node}": one of ${cfg.nodes.map((x) => x.name).join(', ')}`);
      const { ApiClient } = await import('../api/client.js');
      const r = await new ApiClient(cfg).agentPost(n.host, 'rejoin', 3000);
      if (!r.answered) throw new UserError(`agent of ${node}: ${r.body.reason}`);
      if (!r.body.ok) throw new UserError(r.body.reason);
      process.stdout.write(`${node}: ${r.body.reason}; follow it with \`pgarbiter status\`\n`);
    });
}
