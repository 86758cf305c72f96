// The lab's HAProxy: Debian's haproxy as a daemon on the client host (config, pid file, log and
// stats socket in the client host's directory), configured by routing/haproxy.ts with both
// database hosts as servers. `lab up` starts it; clients on the client host reach the primary
// through its read-write port.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  HAPROXY_RO_PORT,
  HAPROXY_RW_PORT,
  type HaproxyServerState,
  haproxyBinary,
  haproxyCommand,
  parseShowStat,
  renderHaproxyConfig,
  validateHaproxyConfig,
} from '../routing/haproxy.js';
import { apiSocketDir, apiSocketPath, HAPROXY_DAEMON } from './api-access.js';
import { daemonAlive, startDaemon, stopDaemon } from './daemon.js';
import { labSslConninfo, PG_PORT } from './pgconf.js';
import type { DaemonRecord, Lab } from './state.js';
import { LAB_API_PORT, labCaFile, labCertFile, labKeyFile, labTlsDir } from './tls.js';
import { MEMBER_HOSTS, PG_HOSTS } from './topology.js';

export const haproxyConfigPath = (lab: Lab) => join(lab.hosts.client.dir, 'haproxy.cfg');
export const haproxyLogPath = (lab: Lab) => join(lab.hosts.client.dir, 'haproxy.log');
export const haproxySocketPath = (lab: Lab) => join(lab.hosts.client.dir, 'haproxy.sock');

export const haproxyCheckPemPath = (lab: Lab) => join(labTlsDir(lab), 'haproxy-client.pem');

/** The lab's haproxy.cfg: both database hosts, Patroni-style checks on their agents over HTTPS;
 *  and each member's API forwarded from a unix socket in the lab's directory (`pgarbiter status`
 *  from the machine connects there: a file crosses network namespaces). */
export function labHaproxyConfig(lab: Lab): string {
  return renderHaproxyConfig({
    servers: PG_HOSTS.map((h) => ({ name: h, address: lab.hosts[h].address })),
    pgPort: PG_PORT,
    statsSocket: haproxySocketPath(lab),
    checkCaFile: labCaFile(lab),
    checkCertFile: lab.clientCerts === 'required' ? haproxyCheckPemPath(lab) : undefined,
    unixForwards: MEMBER_HOSTS.map((h) => ({
      name: `api-${h}`,
      socket: apiSocketPath(lab, h),
      address: lab.hosts[h].address,
      port: LAB_API_PORT,
    })),
  });
}

/**
 * Writes the lab's haproxy.cfg, validates it, and starts haproxy in the foreground (-db) as the
 * daemon `haproxy` on the client host (idempotent: a running one is kept). Stop: stopHaproxy.
 */
export async function startHaproxy(lab: Lab): Promise<DaemonRecord> {
  const bin = haproxyBinary();
  const file = haproxyConfigPath(lab);
  const text = labHaproxyConfig(lab);
  const current = existsSync(file) ? readFileSync(file, 'utf8') : null;
  const running = lab.daemons[HAPROXY_DAEMON];
  if (running && daemonAlive(running) && current === text) return running;
  if (running) await stopHaproxy(lab);
  writeFileSync(file, text, { mode: 0o644 });
  mkdirSync(apiSocketDir(lab), { recursive: true, mode: 0o700 });
  if (lab.clientCerts === 'required') {
    // HAProxy wants certificate and key in one PEM: the client host's.
    const pem =
      readFileSync(labCertFile(lab, 'client'), 'utf8') + readFileSync(labKeyFile(lab, 'client'), 'utf8');
    writeFileSync(haproxyCheckPemPath(lab), pem, { mode: 0o600 });
  }
  await validateHaproxyConfig(file, bin);
  return startDaemon(lab, 'client', HAPROXY_DAEMON, [bin, '-db', '-f', file], haproxyLogPath(lab), {
    settleMs: 300,
  });
}

/** Stops the lab's haproxy (SIGTERM, then SIGKILL after the grace period), by its PID. */
export async function stopHaproxy(lab: Lab): Promise<boolean> {
  return stopDaemon(lab, HAPROXY_DAEMON, 3000);
}

/**
 * A single host:port target for clients on the client host: HAProxy's read-write (5000) or
 * read-only (5001) port. The writer still checks the session (target_session_attrs). TLS with
 * verify-ca: through a TCP proxy the server's certificate names the database host, not the proxy
 * address dialled, so the chain is verified against the lab's CA but not the name.
 */
export function haproxyDsn(lab: Lab, kind: 'rw' | 'ro'): string {
  const port = kind === 'rw' ? HAPROXY_RW_PORT : HAPROXY_RO_PORT;
  const tsa = kind === 'rw' ? 'read-write' : 'read-only';
  return `host=127.0.0.1 port=${port} user=app dbname=postgres target_session_attrs=${tsa} ${labSslConninfo(lab, 'verify-ca')}`;
}

/** HAProxy's view of every server of the lab (read-write `primary` and read-only `replicas`). */
export async function haproxyServers(lab: Lab): Promise<HaproxyServerState[]> {
  return parseShowStat(await haproxyCommand(haproxySocketPath(lab), 'show stat'));
}

/** Names of the servers HAProxy routes `listen` to right now (status starting with UP). */
export async function haproxyRoutesTo(lab: Lab, listen: 'primary' | 'replicas'): Promise<string[]> {
  return (await haproxyServers(lab))
    .filter((s) => s.proxy === listen && /^UP/.test(s.status))
    .map((s) => s.server);
}
