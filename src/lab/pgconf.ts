// The lab's pgarbiter configs (one YAML per host) and the connection parameters for its roles.
import { chmodSync, chownSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { validateConfig } from '../config.js';
import { type ConnOptions, type PgSsl, sslConninfo } from '../postgres/client.js';
import { labClusterMembers, labTlsConfig } from './api-access.js';
import { configPath, type Lab, secretFile } from './state.js';
import { labCaFile, labSsl } from './tls.js';
import { HOST_IFACE, type HostName, vipAddress } from './topology.js';

export const PG_PORT = 5432;
export const PG_BIN_DIR = '/usr/lib/postgresql/15/bin';
/** The database that holds the demo tables. */
export const LAB_DATABASE = 'postgres';
export const APP_USER = 'app';
export const ADMIN_USER = 'pgarbiter';
/** The OS user every member runs as in the lab: owner of the data directories (the agents run
 *  PostgreSQL's binaries directly) and of the secret files. The agents add CAP_NET_ADMIN and CAP_NET_RAW (the VIP's ARP) only. */
export const MEMBER_OS_USER = 'postgres';

export const dataDir = (lab: Lab, host: HostName) => join(lab.hosts[host].dir, 'data');
export const socketDir = (lab: Lab, host: HostName) => join(lab.hosts[host].dir, 'run');
export const pgLogFile = (lab: Lab, host: HostName) => join(lab.hosts[host].dir, 'postgresql.log');
export const stateDir = (lab: Lab, host: HostName) => join(lab.hosts[host].dir, 'state');

/** The config document for one host (`node` = the member it runs as). */
export function labConfigDoc(lab: Lab, host: HostName): Record<string, unknown> {
  const member = host === 'client' ? 'arbiter' : host;
  const members = labClusterMembers(lab);
  return {
    node: member,
    secret_file: secretFile(lab, 'secret'),
    nodes: members.nodes,
    arbiter: members.arbiter,
    initial_primary: 'pg1',
    postgres: {
      port: PG_PORT,
      bin_dir: PG_BIN_DIR,
      data_dir: dataDir(lab, host),
      socket_dir: socketDir(lab, host),
      log_file: pgLogFile(lab, host),
      admin_user: ADMIN_USER,
      os_user: MEMBER_OS_USER,
      admin_password_file: secretFile(lab, 'adminPassword'),
      replication_password_file: secretFile(lab, 'replicationPassword'),
      allowed_cidr: lab.subnet,
      synchronous_commit: lab.sync,
    },
    timing: { profile: lab.timing, ...lab.timingSet },
    lease: lab.lease ?? 'on',
    vip: { address: `${vipAddress(lab.subnet)}/24`, interface: HOST_IFACE },
    state_dir: stateDir(lab, host),
    tls: labTlsConfig(lab, member),
  };
}

/** Writes every host's pgarbiter.yaml (no secret in it: they are in the secret files), validated
 *  first; owned by `owner` (the members' OS user) on the hosts that run a member. */
export function writeLabConfigs(lab: Lab, owner: { uid: number; gid: number }): void {
  for (const host of Object.keys(lab.hosts) as HostName[]) {
    const doc = labConfigDoc(lab, host);
    validateConfig(doc, `lab config for ${host}`);
    const file = configPath(lab, host);
    writeFileSync(file, `# Written by \`pgarbiter lab up\` for lab host ${host}.\n${stringify(doc)}`, {
      mode: 0o600,
    });
    chmodSync(file, 0o600);
    if (host !== 'client') chownSync(file, owner.uid, owner.gid);
  }
}

/** How a client connects to `host` as the app role (over TCP, from inside the lab). */
export function appConn(lab: Lab, host: HostName, applicationName = 'lab-client'): ConnOptions {
  return {
    host: lab.hosts[host].address,
    port: PG_PORT,
    user: APP_USER,
    password: lab.secrets.appPassword,
    database: LAB_DATABASE,
    applicationName,
    connectTimeoutMs: 2000,
    queryTimeoutMs: 5000,
    ssl: labSsl(lab),
  };
}

/** The admin (superuser) role: for the monitoring views a plain role sees only partly. */
export function adminConn(lab: Lab, host: HostName, applicationName = 'lab-admin'): ConnOptions {
  return { ...appConn(lab, host, applicationName), user: ADMIN_USER, password: lab.secrets.adminPassword };
}

/** libpq keywords for a lab client's TLS (psql, the writer): the lab's CA. */
export const labSslConninfo = (lab: Lab, mode: PgSsl['mode'] = 'verify-full') =>
  sslConninfo({ mode, rootCert: labCaFile(lab) }).join(' ');

/** A libpq conninfo for psql (password not included: pass it as PGPASSWORD). */
export function psqlConninfo(o: ConnOptions): string {
  return [
    `host=${o.host}`,
    `port=${o.port}`,
    `user=${o.user}`,
    `dbname=${o.database ?? 'postgres'}`,
    `application_name=${o.applicationName ?? 'lab-psql'}`,
    ...sslConninfo(o.ssl),
    'connect_timeout=2 keepalives=1 keepalives_idle=1 keepalives_interval=1 keepalives_count=3 tcp_user_timeout=4000',
  ].join(' ');
}
