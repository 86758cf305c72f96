// lab.json: what `lab up` built (prefix, subnet, hosts, secrets, daemons it started). Mode 0600:
// it holds the lab's passwords, which are never printed.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SyncCommit, TimingProfile } from '../config.js';
import { UserError } from '../util/errors.js';
import {
  bridgePort,
  DEFAULT_PREFIX,
  HOSTS,
  type HostName,
  hostAddress,
  hostNs,
  labDirOf,
  resolveIdentity,
  switchNs,
  validatePrefix,
} from './topology.js';

export interface LabHost {
  name: HostName;
  ns: string;
  address: string;
  /** Its veth end in the switch namespace. */
  port: string;
  /** Its working directory (data, logs, config). */
  dir: string;
}

export interface DaemonRecord {
  host: HostName;
  name: string;
  pid: number;
  /** /proc/PID/stat start time: guards against a reused PID. */
  startTime: string;
  argv: string[];
  logFile: string;
  pidFile: string;
}

export interface LabSecrets {
  secret: string;
  adminPassword: string;
  replicationPassword: string;
  appPassword: string;
}

export interface Lab {
  version: 1;
  prefix: string;
  subnet: string;
  dir: string;
  switchNs: string;
  hosts: Record<HostName, LabHost>;
  createdAt: string;
  /** Set last by `lab up`: a lab without it is half-built. */
  complete: boolean;
  postgres: boolean;
  agents: boolean;
  sync: SyncCommit;
  timing: TimingProfile;
  secrets: LabSecrets;
  daemons: Record<string, DaemonRecord>;
  partitions: [HostName, HostName][];
  /** Random packet loss in percent on a host's switch port, each direction (`lab loss`). */
  losses?: Partial<Record<HostName, number>>;
  /** The APIs' mutual TLS (config tls.client_certs); absent: off. */
  clientCerts?: 'off' | 'required';
}

export const labFile = (dir: string) => join(dir, 'lab.json');

const password = () => randomBytes(18).toString('base64url');

export function newLab(
  prefix: string,
  subnet: string,
  o: {
    postgres: boolean;
    agents: boolean;
    sync: SyncCommit;
    timing: TimingProfile;
    clientCerts?: 'off' | 'required';
  },
): Lab {
  const dir = labDirOf(prefix);
  const hosts = Object.fromEntries(
    HOSTS.map((h) => [
      h,
      {
        name: h,
        ns: hostNs(prefix, h),
        address: hostAddress(subnet, h),
        port: bridgePort(h),
        dir: join(dir, h),
      },
    ]),
  ) as Record<HostName, LabHost>;
  return {
    version: 1,
    prefix,
    subnet,
    dir,
    switchNs: switchNs(prefix),
    hosts,
    createdAt: new Date().toISOString(),
    complete: false,
    ...o,
    secrets: {
      secret: password(),
      adminPassword: password(),
      replicationPassword: password(),
      appPassword: password(),
    },
    daemons: {},
    partitions: [],
  };
}

export function saveLab(lab: Lab): void {
  const file = labFile(lab.dir);
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(lab, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

/** The lab's state, or null when there is no (readable) lab.json. */
export function readLab(prefix: string): Lab | null {
  const file = labFile(labDirOf(validatePrefix(prefix)));
  if (!existsSync(file)) return null;
  try {
    const lab = JSON.parse(readFileSync(file, 'utf8')) as Lab;
    return lab.version === 1 && lab.prefix === prefix ? lab : null;
  } catch {
    return null;
  }
}

/** The lab named by --prefix / PGARBITER_LAB_PREFIX / default; a UserError when it is not up. */
export function loadLab(prefix?: string): Lab {
  const id = resolveIdentity({ prefix });
  const lab = readLab(id.prefix);
  if (!lab)
    throw new UserError(
      `no lab "${id.prefix}" is up (no ${labFile(labDirOf(id.prefix))}): run \`pgarbiter lab up${id.prefix === DEFAULT_PREFIX ? '' : ` --prefix ${id.prefix}`}\` first`,
    );
  return lab;
}
