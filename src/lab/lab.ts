// Bringing the lab up and down, and the failures it offers. Every host is a network namespace
// whose e0 is one end of a veth pair; the other end is a port of br0 in the switch namespace
// (created there directly, so nothing of the lab ever appears in the root namespace).

import {
  accessSync,
  chownSync,
  constants,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { delimiter, join } from 'node:path';
import { UserError } from '../util/errors.js';
import { asUser, inNetns, type RunResult, run } from '../util/exec.js';
import { osUserIds } from '../util/os-user.js';
import { PYTHON } from '../vip/vip.js';
import { daemonAlive, hostArgv, selfArgv, startDaemon, stopDaemon } from './daemon.js';
import { startHaproxy } from './haproxy.js';
import { dataDir, MEMBER_OS_USER, PG_BIN_DIR, socketDir, stateDir, writeLabConfigs } from './pgconf.js';
import {
  listNetns,
  netnsOf,
  netnsPids,
  pidAlive,
  procStartTime,
  signal,
  terminate,
  waitGone,
} from './proc.js';
import {
  configPath,
  type DaemonRecord,
  type Lab,
  type LabSettings,
  labFile,
  newLab,
  readLab,
  saveLab,
  secretFile,
  writeLabSecrets,
} from './state.js';
import { createLabCerts, labKeyFile } from './tls.js';
import {
  allNamespaces,
  BRIDGE,
  HOST_IFACE,
  HOSTS,
  type HostName,
  hostNs,
  ISO_BRIDGE,
  labDirOf,
  PG_HOSTS,
  validatePrefix,
  validateSubnet,
  vipAddress,
} from './topology.js';

export type Say = (line: string) => void;
const quiet: Say = () => {};

export type IsolateMode = 'link-down' | 'subnet';
export const ISOLATE_MODES: readonly IsolateMode[] = ['link-down', 'subnet'];

/** Every setting may be left out: PostgreSQL and agents on, remote_apply, default timing, no
 *  client certificates, the lease on. */
export interface LabUpOptions extends Partial<LabSettings> {
  prefix: string;
  subnet: string;
  say?: Say;
  /** Checked between steps: an interrupted `lab up` stops at the next step (its caller undoes). */
  signal?: AbortSignal;
}

export interface LabUpResult {
  lab: Lab;
  reused: boolean;
  rebuilt: boolean;
  seconds: number;
}

// ---------------------------------------------------------------- preflight

function onPath(cmd: string): boolean {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch {}
  }
  return false;
}

export function requireRoot(what: string): void {
  if (process.getuid?.() !== 0)
    throw new UserError(
      `${what} must run as root (it manages network namespaces): run it with sudo or as root`,
    );
}

/** Every system tool the lab needs, with the Debian package that provides it. */
export function missingTools(postgres: boolean): { tool: string; pkg: string }[] {
  const tools: [string, string][] = [
    ['ip', 'iproute2'],
    ['iptables', 'iptables'],
    ['nft', 'nftables'],
    ['runuser', 'util-linux'],
    ['setsid', 'util-linux'],
    ['setpriv', 'util-linux'],
    ['haproxy', 'haproxy'],
    ['arping', 'iputils-arping'],
  ];
  const missing = tools.filter(([t]) => !onPath(t)).map(([tool, pkg]) => ({ tool, pkg }));
  // The VIP's tickle ACK (src/vip/vip.ts) runs Debian's python3 by its path.
  try {
    accessSync(PYTHON, constants.X_OK);
  } catch {
    missing.push({ tool: PYTHON, pkg: 'python3-minimal' });
  }
  if (postgres) {
    for (const b of ['initdb', 'pg_ctl', 'pg_basebackup', 'pg_controldata', 'psql', 'postgres']) {
      try {
        accessSync(join(PG_BIN_DIR, b), constants.X_OK);
      } catch {
        missing.push({ tool: join(PG_BIN_DIR, b), pkg: 'postgresql-15' });
      }
    }
  }
  return missing;
}

export function requireTools(postgres: boolean): void {
  const missing = missingTools(postgres);
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map((m) => m.pkg))].join(' ');
  throw new UserError(
    `missing ${missing.map((m) => m.tool).join(', ')}: install with \`apt-get install -y ${pkgs}\` (or run \`bash scripts/setup.sh\`)`,
  );
}

const postgresIds = () => osUserIds(MEMBER_OS_USER);

// ---------------------------------------------------------------- inspection

async function ourNamespaces(prefix: string): Promise<string[]> {
  const mine = new Set(allNamespaces(prefix));
  return (await listNetns()).filter((n) => mine.has(n));
}

/** The PID on the first line of a pid file, or null if it is missing or not a PID. */
function readPidFile(path: string): number | null {
  try {
    const pid = Number(readFileSync(path, 'utf8').split('\n')[0]?.trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

export function postmasterPid(lab: Lab, host: HostName): number | null {
  const pid = readPidFile(join(dataDir(lab, host), 'postmaster.pid'));
  return pid !== null && pidAlive(pid) ? pid : null;
}

/** Why an existing lab is not complete, or null when it is complete and healthy. */
async function incompleteReason(prefix: string, lab: Lab | null, present: string[]): Promise<string | null> {
  if (!lab)
    return present.length
      ? `namespaces ${present.join(', ')} exist but ${labFile(labDirOf(prefix))} does not`
      : 'no lab.json';
  if (!lab.complete) return 'a previous `lab up` did not finish';
  const absent = allNamespaces(prefix).filter((n) => !present.includes(n));
  if (absent.length) return `namespaces ${absent.join(', ')} are missing`;
  const ports = await run(['ip', '-n', lab.switchNs, '-j', 'link', 'show'], {
    timeoutMs: 5000,
    allowFailure: true,
  });
  for (const h of HOSTS)
    if (!ports.stdout.includes(`"${lab.hosts[h].port}"`)) return `${h}'s bridge port is missing`;
  if (lab.postgres)
    for (const h of PG_HOSTS) if (postmasterPid(lab, h) === null) return `PostgreSQL on ${h} is not running`;
  for (const d of Object.values(lab.daemons))
    if (!daemonAlive(d)) return `${d.name} (pid ${d.pid}) is not running`;
  return null;
}

// ---------------------------------------------------------------- up

async function ip(args: string[]): Promise<void> {
  await run(['ip', ...args], { timeoutMs: 10_000 });
}

async function disableIpv6(ns: string): Promise<void> {
  await run(
    [
      'ip',
      'netns',
      'exec',
      ns,
      'sysctl',
      '-qw',
      'net.ipv6.conf.all.disable_ipv6=1',
      'net.ipv6.conf.default.disable_ipv6=1',
    ],
    { timeoutMs: 10_000 },
  );
}

async function buildTopology(lab: Lab): Promise<void> {
  const sw = lab.switchNs;
  await ip(['netns', 'add', sw]);
  await disableIpv6(sw);
  await ip(['-n', sw, 'link', 'set', 'lo', 'up']);
  await ip(['-n', sw, 'link', 'add', BRIDGE, 'type', 'bridge']);
  await ip(['-n', sw, 'link', 'set', BRIDGE, 'up']);
  await ip(['-n', sw, 'link', 'add', ISO_BRIDGE, 'type', 'bridge']);
  await ip(['-n', sw, 'link', 'set', ISO_BRIDGE, 'up']);
  await Promise.all(
    HOSTS.map(async (h) => {
      const host = lab.hosts[h];
      await ip(['netns', 'add', host.ns]);
      await disableIpv6(host.ns);
      await ip([
        '-n',
        sw,
        'link',
        'add',
        host.port,
        'type',
        'veth',
        'peer',
        'name',
        HOST_IFACE,
        'netns',
        host.ns,
      ]);
      await ip(['-n', sw, 'link', 'set', host.port, 'master', BRIDGE, 'up']);
      await ip(['-n', host.ns, 'link', 'set', 'lo', 'up']);
      await ip(['-n', host.ns, 'addr', 'add', `${host.address}/24`, 'dev', HOST_IFACE]);
      await ip(['-n', host.ns, 'link', 'set', HOST_IFACE, 'up']);
    }),
  );
}

/** The lab's directories, secret files and configs; what a member writes is owned by the
 *  members' OS user (they run unprivileged). */
function makeDirs(lab: Lab): void {
  const pg = postgresIds();
  mkdirSync(lab.dir, { recursive: true, mode: 0o755 });
  writeLabSecrets(lab, pg);
  for (const h of HOSTS) {
    const dir = lab.hosts[h].dir;
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    mkdirSync(stateDir(lab, h), { recursive: true, mode: 0o700 });
    if (h !== 'client') chownSync(stateDir(lab, h), pg.uid, pg.gid);
    if ((PG_HOSTS as readonly string[]).includes(h)) {
      chownSync(dir, pg.uid, pg.gid);
      mkdirSync(socketDir(lab, h), { recursive: true, mode: 0o700 });
      chownSync(socketDir(lab, h), pg.uid, pg.gid);
    }
  }
  writeLabConfigs(lab, pg);
}

/** Runs `pgarbiter init` inside a database host; its output goes to the host's init.log. */
async function initHost(lab: Lab, host: HostName): Promise<void> {
  const argv = hostArgv(
    lab,
    host,
    selfArgv(
      'init',
      '--config',
      configPath(lab, host),
      '--demo-app-password-file',
      secretFile(lab, 'appPassword'),
    ),
  );
  const r = await run(argv, { timeoutMs: 90_000, allowFailure: true });
  const logFile = join(lab.hosts[host].dir, 'init.log');
  writeFileSync(logFile, r.stdout + r.stderr);
  if (r.code !== 0) {
    const tail = (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ');
    throw new Error(`pgarbiter init in ${host} failed (exit ${r.code}, full output in ${logFile}): ${tail}`);
  }
}

/**
 * argv prefix that runs a member as MEMBER_OS_USER, as the systemd units do (User=,
 * AmbientCapabilities=): an agent keeps CAP_NET_ADMIN (the fence, the lease, the VIP's address)
 * and CAP_NET_RAW (the VIP's gratuitous ARP: arping) as ambient capabilities and nothing else;
 * the arbiter keeps no capability. No new privileges either way.
 */
export function memberPrivileges(agent: boolean): string[] {
  const caps = agent ? '-all,+net_admin,+net_raw' : '-all';
  return [
    'setpriv',
    `--reuid=${MEMBER_OS_USER}`,
    `--regid=${MEMBER_OS_USER}`,
    '--init-groups',
    `--inh-caps=${caps}`,
    ...(agent ? ['--ambient-caps=+net_admin,+net_raw'] : []),
    `--bounding-set=${caps}`,
    '--no-new-privs',
    '--',
  ];
}

/** Starts the daemon of one member, unprivileged: the arbiter on `arbiter`, an agent on pg1/pg2. */
export function startAgent(lab: Lab, host: 'arbiter' | (typeof PG_HOSTS)[number]): Promise<DaemonRecord> {
  return host === 'arbiter'
    ? startDaemon(
        lab,
        'arbiter',
        'arbiter',
        [...memberPrivileges(false), ...selfArgv('arbiter', '--config', configPath(lab, 'arbiter'))],
        join(lab.hosts.arbiter.dir, 'arbiter.log'),
      )
    : startDaemon(
        lab,
        host,
        `agent-${host}`,
        [...memberPrivileges(true), ...selfArgv('agent', '--config', configPath(lab, host))],
        join(lab.hosts[host].dir, 'agent.log'),
      );
}

export async function startAgents(lab: Lab): Promise<void> {
  await startAgent(lab, 'arbiter');
  for (const h of PG_HOSTS) await startAgent(lab, h);
  lab.agents = true;
  saveLab(lab);
}

/** Stops a database host's PostgreSQL as its owner would (`pg_ctl stop -m MODE -w`), inside the
 *  host, waiting up to `timeoutS`. pg_ctl's result is returned, not thrown: callers decide. */
export function stopPostgres(
  lab: Lab,
  host: (typeof PG_HOSTS)[number],
  mode: 'fast' | 'immediate',
  timeoutS = 30,
): Promise<RunResult> {
  const pgCtl = join(PG_BIN_DIR, 'pg_ctl');
  const argv = asUser('postgres', [
    pgCtl,
    '-D',
    dataDir(lab, host),
    '-m',
    mode,
    '-w',
    '-t',
    String(timeoutS),
    'stop',
  ]);
  return run(hostArgv(lab, host, argv), { timeoutMs: (timeoutS + 10) * 1000, allowFailure: true });
}

export async function stopAgents(lab: Lab): Promise<void> {
  for (const name of [...PG_HOSTS.map((h) => `agent-${h}`), 'arbiter']) await stopDaemon(lab, name);
}

/** Brings the lab up (idempotent: a complete lab is reused, a half-built one rebuilt). */
export async function labUp(opts: LabUpOptions): Promise<LabUpResult> {
  const t0 = performance.now();
  const say = opts.say ?? quiet;
  const prefix = validatePrefix(opts.prefix);
  const subnet = validateSubnet(opts.subnet);
  const postgres = opts.postgres ?? true;
  const agents = postgres && (opts.agents ?? true);
  requireRoot('lab up');
  requireTools(postgres);
  if (postgres) postgresIds();

  const present = await ourNamespaces(prefix);
  const existing = readLab(prefix);
  let rebuilt = false;
  if (existing || present.length > 0 || existsSync(labDirOf(prefix))) {
    const reason = await incompleteReason(prefix, existing, present);
    if (reason === null && existing) {
      if (existing.subnet !== subnet)
        throw new UserError(
          `lab "${prefix}" is already up on ${existing.subnet}, not ${subnet}: run \`pgarbiter lab down --prefix ${prefix}\` first to change it`,
        );
      const differs = (what: string, have: string, want: string) => {
        if (have !== want)
          throw new UserError(
            `lab "${prefix}" is already up with ${what} ${have}, not ${want}: run \`pgarbiter lab down --prefix ${prefix}\` first to change it`,
          );
      };
      differs('client certificates', existing.clientCerts ?? 'off', opts.clientCerts ?? 'off');
      differs('lease', existing.lease ?? 'on', opts.lease ?? 'on');
      differs('--timing-set', JSON.stringify(existing.timingSet ?? {}), JSON.stringify(opts.timingSet ?? {}));
      say(`lab "${prefix}" is already up (${existing.subnet}): reusing it`);
      return { lab: existing, reused: true, rebuilt: false, seconds: (performance.now() - t0) / 1000 };
    }
    say(`found a half-built lab "${prefix}" (${reason}): cleaning it up and rebuilding`);
    await labDown(prefix, { say });
    rebuilt = true;
  }
  const step = () => opts.signal?.throwIfAborted();
  step();

  const lab = newLab(prefix, subnet, {
    postgres,
    agents: false,
    sync: opts.sync ?? 'remote_apply',
    timing: opts.timing ?? 'default',
    ...(opts.timingSet && Object.keys(opts.timingSet).length > 0 ? { timingSet: opts.timingSet } : {}),
    clientCerts: opts.clientCerts ?? 'off',
    lease: opts.lease ?? 'on',
  });
  makeDirs(lab);
  saveLab(lab); // before anything else exists: a crash from here on is cleaned by `lab down`
  await createLabCerts(lab);
  // The members run as the postgres user: each reads its own key (mode 0600), no other.
  const pg = postgresIds();
  for (const h of ['pg1', 'pg2', 'arbiter'] as const) chownSync(labKeyFile(lab, h), pg.uid, pg.gid);
  let t = performance.now();
  await buildTopology(lab);
  step();
  say(
    `network: ${HOSTS.length} hosts on ${subnet} behind a switch (${((performance.now() - t) / 1000).toFixed(2)} s)`,
  );
  if (postgres) {
    for (const h of PG_HOSTS) {
      step();
      t = performance.now();
      await initHost(lab, h);
      say(`${h}: pgarbiter init done (${((performance.now() - t) / 1000).toFixed(2)} s)`);
    }
  }
  if (agents) {
    step();
    t = performance.now();
    await startAgents(lab);
    say(`arbiter and agents started (${((performance.now() - t) / 1000).toFixed(2)} s)`);
    // Client routing the way Patroni users do it: HAProxy on the client host checks the agents.
    step();
    t = performance.now();
    await startHaproxy(lab);
    say(
      `haproxy on client: :5000 read-write, :5001 read-only (${((performance.now() - t) / 1000).toFixed(2)} s)`,
    );
  }
  step();
  lab.complete = true;
  saveLab(lab);
  return { lab, reused: false, rebuilt, seconds: (performance.now() - t0) / 1000 };
}

// ---------------------------------------------------------------- down

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** Data directory of a postmaster process (`.../bin/postgres -D DIR`), else null. */
function postmasterDataDir(pid: number): string | null {
  const argv = cmdline(pid);
  if (!argv[0]?.endsWith('/postgres')) return null;
  const i = argv.indexOf('-D');
  return i >= 0 ? (argv[i + 1] ?? null) : null;
}

async function pgStopImmediate(ns: string | null, dir: string): Promise<void> {
  const argv = asUser('postgres', [
    join(PG_BIN_DIR, 'pg_ctl'),
    '-D',
    dir,
    '-m',
    'immediate',
    '-w',
    '-t',
    '10',
    'stop',
  ]);
  await run(inNetns(ns ?? undefined, argv), { timeoutMs: 15_000, allowFailure: true });
}

export interface LabDownOptions {
  say?: Say;
}

/**
 * Removes every trace of lab `prefix`, also of a half-built or crashed one: daemons (by PID),
 * postmasters (pg_ctl -m immediate), whatever else runs in its namespaces, the namespaces, the
 * lab directory. Touches only namespaces named `<prefix>-{sw,pg1,pg2,arbiter,client}`.
 */
export async function labDown(
  prefix: string,
  opts: LabDownOptions = {},
): Promise<{ seconds: number; removed: string[] }> {
  const t0 = performance.now();
  const say = opts.say ?? quiet;
  validatePrefix(prefix);
  requireRoot('lab down');
  const dir = labDirOf(prefix);
  const lab = readLab(prefix);
  const removed: string[] = [];
  const spare = new Set([process.pid, process.ppid]);

  // 1. Daemons we started, by PID (from lab.json, and from pid files if lab.json is gone).
  const daemonPids = new Map<number, string>();
  for (const d of Object.values(lab?.daemons ?? {}))
    if (procStartTime(d.pid) === d.startTime) daemonPids.set(d.pid, d.name);
  for (const h of HOSTS) {
    const hdir = join(dir, h);
    if (!existsSync(hdir)) continue;
    for (const f of readdirSync(hdir).filter((x) => x.endsWith('.pid'))) {
      const pid = readPidFile(join(hdir, f));
      if (pid !== null && (await netnsOf(pid)).includes(hostNs(prefix, h)))
        daemonPids.set(pid, f.replace(/\.pid$/, ''));
    }
  }
  await Promise.all(
    [...daemonPids].map(async ([pid, name]) => {
      await terminate(pid, 3000);
      removed.push(`${name} (pid ${pid})`);
    }),
  );

  // 2. Postmasters: in our namespaces, or (orphaned) with a data directory under our lab dir.
  const namespaces = await ourNamespaces(prefix);
  const stops: Promise<void>[] = [];
  for (const ns of namespaces)
    for (const pid of await netnsPids(ns)) {
      const data = postmasterDataDir(pid);
      if (data)
        stops.push(pgStopImmediate(ns, data).then(() => void removed.push(`postgres ${data} (pid ${pid})`)));
    }
  for (const h of PG_HOSTS) {
    // The stops above run meanwhile and remove pid files: a vanished file is simply skipped.
    const pid = readPidFile(join(dir, h, 'data', 'postmaster.pid'));
    if (
      pid !== null &&
      pidAlive(pid) &&
      postmasterDataDir(pid)?.startsWith(`${dir}/`) &&
      (await netnsOf(pid)).length === 0
    )
      stops.push(
        pgStopImmediate(null, join(dir, h, 'data')).then(
          () => void removed.push(`orphaned postgres (pid ${pid})`),
        ),
      );
  }
  await Promise.all(stops);

  // 3. Whatever still runs inside our namespaces, then the namespaces themselves.
  for (let round = 0; round < 3; round++) {
    const pids = (await Promise.all(namespaces.map(netnsPids))).flat().filter((p) => !spare.has(p));
    if (pids.length === 0) break;
    for (const p of pids) signal(p, 'SIGKILL');
    const left = await waitGone(pids, 3000);
    if (round === 2 && left.length) say(`warning: processes ${left.join(' ')} did not exit`);
  }
  for (const ns of namespaces) {
    await run(['ip', 'netns', 'del', ns], { timeoutMs: 10_000, allowFailure: true });
    removed.push(`netns ${ns}`);
  }
  // 4. The working directory.
  if (existsSync(dir)) {
    rmSync(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  return { seconds: (performance.now() - t0) / 1000, removed };
}

// ---------------------------------------------------------------- failures

/** Makes `host` unreachable: its interface down, or its switch port moved to the empty bridge. */
export async function isolate(lab: Lab, host: HostName, mode: IsolateMode = 'link-down'): Promise<void> {
  const h = lab.hosts[host];
  if (mode === 'link-down') await ip(['-n', h.ns, 'link', 'set', HOST_IFACE, 'down']);
  else if (mode === 'subnet') await ip(['-n', lab.switchNs, 'link', 'set', h.port, 'master', ISO_BRIDGE]);
  else throw new UserError(`unknown isolation mode "${mode}": use ${ISOLATE_MODES.join(' or ')}`);
}

/** Undoes both kinds of isolation (idempotent). */
export async function heal(lab: Lab, host: HostName): Promise<void> {
  const h = lab.hosts[host];
  await ip(['-n', lab.switchNs, 'link', 'set', h.port, 'master', BRIDGE]);
  await ip(['-n', h.ns, 'link', 'set', HOST_IFACE, 'up']);
}

const SWITCH_TABLE = 'pgarbiter_part';

/** The switch's fault rules, rebuilt whole: partitions (drop between two ports) and packet loss
 *  (a random share of the frames to and from a port, with nft's numgen: there is no netem here). */
async function applySwitchRules(lab: Lab): Promise<void> {
  const rules = lab.partitions.flatMap(([a, b]) => {
    const pa = lab.hosts[a].port;
    const pb = lab.hosts[b].port;
    return [`    iifname "${pa}" oifname "${pb}" drop`, `    iifname "${pb}" oifname "${pa}" drop`];
  });
  for (const [from, to] of lab.oneWay ?? [])
    rules.push(`    iifname "${lab.hosts[from].port}" oifname "${lab.hosts[to].port}" drop`);
  for (const [host, percent] of Object.entries(lab.losses ?? {}) as [HostName, number][]) {
    if (!percent) continue;
    const port = lab.hosts[host].port;
    const share = percent >= 100 ? '' : ` numgen random mod 100 < ${percent}`; // numgen tops at 99
    rules.push(`    iifname "${port}"${share} drop`, `    oifname "${port}"${share} drop`);
  }
  let script = `table bridge ${SWITCH_TABLE}\ndelete table bridge ${SWITCH_TABLE}\n`;
  if (rules.length)
    script +=
      `table bridge ${SWITCH_TABLE} {\n  chain faults {\n` +
      `    type filter hook forward priority 0; policy accept;\n${rules.join('\n')}\n  }\n}\n`;
  await run(inNetns(lab.switchNs, ['nft', '-f', '-']), { input: script, timeoutMs: 10_000 });
}

/** Drops `percent` % of the frames to and from a host, at random, in the switch (0 ends it). */
export async function setLoss(lab: Lab, host: HostName, percent: number): Promise<void> {
  if (!Number.isInteger(percent) || percent < 0 || percent > 100)
    throw new UserError(`packet loss "${percent}": give a whole percentage from 0 to 100`);
  const losses = { ...(lab.losses ?? {}) };
  if (percent === 0) delete losses[host];
  else losses[host] = percent;
  lab.losses = losses;
  await applySwitchRules(lab);
  saveLab(lab);
}

/** Drops all frames between hosts a and b (both directions) in the switch; others unaffected. */
export async function partition(lab: Lab, a: HostName, b: HostName): Promise<void> {
  if (a === b) throw new UserError('a partition needs two different hosts');
  if (!lab.partitions.some(([x, y]) => (x === a && y === b) || (x === b && y === a)))
    lab.partitions.push([a, b]);
  await applySwitchRules(lab);
  saveLab(lab);
}

/** Removes the partition between a and b, or every partition when no pair is given. */
export async function unpartition(lab: Lab, a?: HostName, b?: HostName): Promise<void> {
  lab.partitions =
    a && b ? lab.partitions.filter(([x, y]) => !((x === a && y === b) || (x === b && y === a))) : [];
  await applySwitchRules(lab);
  saveLab(lab);
}

/** Drops every frame from host `from` to host `to` in the switch (the other direction passes);
 *  `on: false` removes that drop. */
export async function oneWay(lab: Lab, from: HostName, to: HostName, on = true): Promise<void> {
  if (from === to) throw new UserError('a one-way drop needs two different hosts');
  const rest = (lab.oneWay ?? []).filter(([x, y]) => !(x === from && y === to));
  lab.oneWay = on ? [...rest, [from, to]] : rest;
  await applySwitchRules(lab);
  saveLab(lab);
}

async function signalHost(lab: Lab, host: HostName, sig: NodeJS.Signals): Promise<number[]> {
  const spare = new Set([process.pid, process.ppid]);
  const pids = (await netnsPids(lab.hosts[host].ns)).filter((p) => !spare.has(p));
  for (const p of pids) signal(p, sig);
  return pids;
}

/** Freezes a whole host: SIGSTOP to every process in its namespace. Returns the PIDs. */
export const freeze = (lab: Lab, host: HostName) => signalHost(lab, host, 'SIGSTOP');
/** Resumes a frozen host: SIGCONT to every process in its namespace. */
export const thaw = (lab: Lab, host: HostName) => signalHost(lab, host, 'SIGCONT');

// ---------------------------------------------------------------- status

export interface HostStatus {
  host: HostName;
  ns: string;
  address: string;
  present: boolean;
  link: 'up' | 'down' | 'missing';
  bridge: string | null;
  postgres?: { pid: number | null; state: string | null };
  /** Database hosts: the cluster's VIP is on this host's e0 now. */
  vip?: boolean;
  daemons: { name: string; pid: number; alive: boolean }[];
}

async function pgState(lab: Lab, host: HostName): Promise<string | null> {
  const r = await run(
    hostArgv(lab, host, asUser('postgres', [join(PG_BIN_DIR, 'pg_controldata'), '-D', dataDir(lab, host)])),
    { timeoutMs: 5000, allowFailure: true },
  );
  return /Database cluster state:\s*(.+)/.exec(r.stdout)?.[1]?.trim() ?? null;
}

export async function labStatus(lab: Lab): Promise<HostStatus[]> {
  const present = new Set(await ourNamespaces(lab.prefix));
  const sw = present.has(lab.switchNs)
    ? ((JSON.parse(
        (await run(['ip', '-n', lab.switchNs, '-j', 'link', 'show'], { timeoutMs: 5000 })).stdout || '[]',
      ) as { ifname: string; master?: string }[]) ?? [])
    : [];
  return Promise.all(
    HOSTS.map(async (h): Promise<HostStatus> => {
      const host = lab.hosts[h];
      let link: HostStatus['link'] = 'missing';
      if (present.has(host.ns)) {
        const r = await run(['ip', '-n', host.ns, '-j', 'link', 'show', HOST_IFACE], {
          timeoutMs: 5000,
          allowFailure: true,
        });
        const info = r.code === 0 ? (JSON.parse(r.stdout) as { flags?: string[] }[])[0] : undefined;
        if (info) link = info.flags?.includes('UP') ? 'up' : 'down';
      }
      const st: HostStatus = {
        host: h,
        ns: host.ns,
        address: host.address,
        present: present.has(host.ns),
        link,
        bridge: sw.find((l) => l.ifname === host.port)?.master ?? null,
        daemons: Object.values(lab.daemons)
          .filter((d) => d.host === h)
          .map((d) => ({ name: d.name, pid: d.pid, alive: daemonAlive(d) })),
      };
      if (lab.postgres && (PG_HOSTS as readonly string[]).includes(h)) {
        st.postgres = {
          pid: postmasterPid(lab, h),
          state: present.has(host.ns) ? await pgState(lab, h) : null,
        };
        st.vip = present.has(host.ns) && (await vipHolder(lab, h));
      }
      return st;
    }),
  );
}

/** Is the lab's VIP on `host`'s e0 (whatever the link state)? */
export async function vipHolder(lab: Lab, host: HostName): Promise<boolean> {
  const r = await run(['ip', '-n', lab.hosts[host].ns, '-j', '-4', 'addr', 'show', 'dev', HOST_IFACE], {
    timeoutMs: 5000,
    allowFailure: true,
  });
  if (r.code !== 0) return false;
  const vip = vipAddress(lab.subnet);
  const links = JSON.parse(r.stdout || '[]') as { addr_info?: { local: string }[] }[];
  return links.some((l) => (l.addr_info ?? []).some((a) => a.local === vip));
}

// ---------------------------------------------------------------- probes

/** TCP connect from inside `from` to ip:port: 'open', 'refused' (host reachable) or 'timeout'. */
export async function tcpProbe(
  lab: Lab,
  from: HostName,
  ip: string,
  port: number,
  timeoutS = 1,
): Promise<'open' | 'refused' | 'timeout'> {
  const r = await run(
    hostArgv(lab, from, [
      'timeout',
      String(timeoutS),
      'bash',
      '-c',
      'exec 3<>"/dev/tcp/$0/$1"',
      ip,
      String(port),
    ]),
    { timeoutMs: timeoutS * 1000 + 5000, allowFailure: true },
  );
  if (r.code === 0) return 'open';
  if (r.code === 124) return 'timeout';
  return /refused/i.test(r.stderr) ? 'refused' : 'timeout';
}
