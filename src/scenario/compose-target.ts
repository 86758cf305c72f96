// The compose deployment (docker-compose.yml) as a test-loss target: the original's own setup.
// Each cell gets a fresh deployment of its own compose project (its own network, volumes and
// generated configs, so a user's deployment in the same checkout is left alone); the writer and
// the checker run on this host, which reaches the compose network; the faults are the
// original's commands: `docker compose stop` / `docker compose kill` of a service, and
// `docker network disconnect` (then `connect` again: the old primary must rejoin by pg_rewind).
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ApiClient } from '../api/client.js';
import { fetchClusterView } from '../cluster/view.js';
import { type Config, loadConfig, type SyncCommit } from '../config.js';
import {
  CLIENT_CONFIG,
  COMPOSE_CA_FILE,
  COMPOSE_DB_NODES,
  type ComposeMember,
  composeAddress,
  readAppPassword,
  validateNet,
} from '../deploy/compose.js';
import { CLI_MAIN, selfArgv } from '../lab/daemon.js';
import { sslConninfo } from '../postgres/client.js';
import { HAPROXY_RW_PORT, HAPROXY_STATS_PORT, parseShowStat } from '../routing/haproxy.js';
import { UserError } from '../util/errors.js';
import { run } from '../util/exec.js';
import { type CheckJson, healthy, startWriterProcess, waitFor } from './lab-run.js';
import type { LossTarget } from './test-loss.js';

export const COMPOSE_TEST_PROJECT = 'pgtl';
/** test-loss's own compose network (a user's deployment defaults to 10.214.0.0/24). */
export const COMPOSE_TEST_NET = '10.214.100';
/** The checkout that holds docker-compose.yml and the Dockerfile (dist/src/scenario -> root). */
export const COMPOSE_ROOT = resolve(dirname(CLI_MAIN), '../../..');
export const DEFAULT_BASE_IMAGE = 'pgarbiter-base:bookworm';

/** HAProxy's read-write port a test project publishes on 127.0.0.1 (read-only: the next one): its
 *  own, from its network, so it never meets a user's deployment (5000/5001). */
export const composeTestRwPort = (net: string) => 15_000 + 2 * Number(validateNet(net).split('.')[2]);

export interface ComposeTargetOptions {
  project?: string;
  net?: string;
  root?: string;
  say?: (line: string) => void;
}

async function docker(args: string[], timeoutMs: number, env: NodeJS.ProcessEnv = {}, cwd?: string) {
  return run(['docker', ...args], { timeoutMs, allowFailure: true, env: { ...process.env, ...env }, cwd });
}

const lastLine = (t: string) => t.trim().split('\n').filter(Boolean).pop() ?? '';

/**
 * Bad input, found before anything is changed: no engine, no base image, no node binary or
 * build in the build context. Each a one-line UserError saying what to run.
 */
export async function composePreflight(root = COMPOSE_ROOT): Promise<void> {
  const prepare = 'run `bash scripts/containers.sh` first';
  const info = await docker(['info', '--format', '{{.ServerVersion}}'], 20_000).catch((e) => ({
    code: 127,
    stdout: '',
    stderr: String((e as Error).message),
  }));
  if (info.code !== 0)
    throw new UserError(
      `no Docker engine answers (docker info: ${lastLine(info.stderr) || `exit ${info.code}`}): ${prepare}`,
    );
  const compose = await docker(['compose', 'version'], 60_000);
  if (compose.code !== 0) throw new UserError(`\`docker compose\` does not work here: ${prepare}`);
  const base = process.env.PGARBITER_BASE_IMAGE ?? DEFAULT_BASE_IMAGE;
  if (base === DEFAULT_BASE_IMAGE) {
    const img = await docker(['image', 'inspect', base], 20_000);
    if (img.code !== 0) throw new UserError(`the base image ${base} is missing: ${prepare}`);
  }
  const node = await run(['test', '-x', join(root, '.container/node')], { allowFailure: true });
  if (node.code !== 0)
    throw new UserError(`${join(root, '.container/node')} is missing (the image's node): ${prepare}`);
}

export function composeTarget(o: ComposeTargetOptions = {}): LossTarget & { configDir: string } {
  const project = o.project ?? COMPOSE_TEST_PROJECT;
  if (!/^[a-z0-9][a-z0-9_-]{0,30}$/.test(project))
    throw new UserError(`compose project "${project}": lowercase letters, digits, - and _`);
  const net = validateNet(o.net ?? COMPOSE_TEST_NET);
  const root = o.root ?? COMPOSE_ROOT;
  const configDir = join(root, `.compose-${project}`);
  const network = `${project}_db`;
  let sync: SyncCommit = 'remote_apply';
  let built = false;
  let cfg: Config | undefined;
  let appPassword = '';
  const rwPort = composeTestRwPort(net);
  const env = () => ({
    PGARBITER_COMPOSE_NET: net,
    PGARBITER_COMPOSE_DIR: configDir,
    PGARBITER_SYNC: sync,
    PGARBITER_RW_PORT: String(rwPort),
    PGARBITER_RO_PORT: String(rwPort + 1),
  });
  const compose = async (args: string[], timeoutMs = 120_000) => {
    const r = await docker(['compose', '-p', project, ...args], timeoutMs, env(), root);
    if (r.code !== 0)
      throw new Error(`docker compose ${args.join(' ')} failed (exit ${r.code}): ${lastLine(r.stderr)}`);
    return r;
  };
  const member = (name: string): ComposeMember => {
    if (!(COMPOSE_DB_NODES as readonly string[]).includes(name) && name !== 'arbiter')
      throw new Error(`not a compose member: ${name}`);
    return name as ComposeMember;
  };
  const needCfg = () => {
    if (!cfg) throw new Error('the compose deployment is not up');
    return cfg;
  };
  const containerOf = async (service: string) => {
    const id = (await compose(['ps', '-q', service], 60_000)).stdout.trim();
    if (!id) throw new Error(`no container for ${service}`);
    return id;
  };
  // TLS as every client of the deployment: verify-full against its CA when dialling a member;
  // verify-ca through HAProxy (the address dialled is the proxy's, not the member's).
  const tls = (mode: 'verify-full' | 'verify-ca') =>
    sslConninfo({ mode, rootCert: join(configDir, COMPOSE_CA_FILE) }).join(' ');
  const multiHost = () =>
    `host=${COMPOSE_DB_NODES.map((n) => composeAddress(net, n)).join(',')} port=5432 user=app dbname=postgres target_session_attrs=read-write ${tls('verify-full')}`;
  const timed = async (what: string, f: () => Promise<unknown>) => {
    const t0 = Date.now();
    await f();
    return `${what} (${Date.now() - t0} ms)`;
  };
  const down = async () => {
    await compose(['down', '-v', '--remove-orphans', '--timeout', '5'], 180_000);
    rmSync(configDir, { recursive: true, force: true });
    cfg = undefined;
  };

  return {
    configDir,
    describe: (s) =>
      `docker compose up (synchronous_commit=${s}, default timing) as project "${project}" on ${net}.0/24`,
    async up(s) {
      const t0 = Date.now();
      await down();
      sync = s;
      if (!built) {
        // The image of this checkout (cached layers make it quick when nothing changed).
        o.say?.(`building the image (docker compose build config)`);
        await compose(['build', 'config'], 900_000);
        built = true;
      }
      await compose(['up', '-d'], 300_000);
      cfg = loadConfig(join(configDir, CLIENT_CONFIG));
      appPassword = readAppPassword(configDir);
      return (Date.now() - t0) / 1000;
    },
    healthy: (timeoutMs) =>
      waitFor(
        'a healthy compose cluster (primary + streaming promotable standby)',
        timeoutMs,
        async () => healthy(await fetchClusterView(needCfg())),
        300,
      ),
    async writerDsn(via, primary) {
      if (via !== 'haproxy') return multiHost();
      const haproxy = composeAddress(net, 'haproxy');
      await waitFor(`HAProxy routing writes to ${primary}`, 20_000, async () => {
        const r = await fetch(`http://${haproxy}:${HAPROXY_STATS_PORT}/;csv`, {
          signal: AbortSignal.timeout(1500),
        });
        const rw = parseShowStat(await r.text()).filter((x) => x.proxy === 'primary' && /^UP/.test(x.status));
        return rw.length === 1 && rw[0]?.server === primary ? true : undefined;
      });
      return `host=${haproxy} port=${HAPROXY_RW_PORT} user=app dbname=postgres target_session_attrs=read-write ${tls('verify-ca')}`;
    },
    address: (name) => composeAddress(net, member(name)),
    scratchDir: () => join(tmpdir(), `pgarbiter-test-loss-${project}`),
    startWriter: (w) => startWriterProcess((argv) => argv, appPassword, { ...w, dsn: w.dsn ?? multiHost() }),
    stop: (name, kill) =>
      timed(`docker compose ${kill ? 'kill' : 'stop'} ${member(name)}`, () =>
        compose([kill ? 'kill' : 'stop', member(name)], 60_000),
      ),
    async isolate(name) {
      const id = await containerOf(member(name));
      return timed(`docker network disconnect ${network} ${name}`, async () => {
        const r = await docker(['network', 'disconnect', network, id], 60_000);
        if (r.code !== 0) throw new Error(`docker network disconnect failed: ${lastLine(r.stderr)}`);
      });
    },
    async heal(name) {
      const id = await containerOf(member(name));
      const ip = composeAddress(net, member(name));
      return timed(`docker network connect --ip ${ip} ${network} ${name}`, async () => {
        const r = await docker(['network', 'connect', '--ip', ip, network, id], 60_000);
        if (r.code !== 0) throw new Error(`docker network connect failed: ${lastLine(r.stderr)}`);
      });
    },
    arbiterView: () => new ApiClient(needCfg()).arbiterState(1500),
    async rejoinedAs(name) {
      const s = await new ApiClient(needCfg()).agentState(composeAddress(net, member(name)), 1500);
      const streaming =
        s !== null &&
        s.role === 'standby' &&
        s.postgres.inRecovery === true &&
        s.postgres.receiving &&
        !s.fenced;
      return { streaming, method: s?.lastRejoin?.method ?? null };
    },
    async checkLedger(ledger): Promise<CheckJson> {
      const r = await run(selfArgv('check', '--ledger', ledger, '--dsn', multiHost(), '--json'), {
        timeoutMs: 60_000,
        allowFailure: true,
        env: { ...process.env, PGPASSWORD: appPassword },
      });
      if (!r.stdout.trim()) throw new Error(`check failed (exit ${r.code}): ${r.stderr.trim()}`);
      return { exitCode: r.code, report: JSON.parse(r.stdout) };
    },
    down,
  };
}
