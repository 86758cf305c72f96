// What every integration test file needs around a lab: its name (prefix and subnet), the root
// check, a clean start (a crashed run may have left a lab), bringing the lab up, and taking it
// down with nothing left behind.
//
// PGARBITER_LAB_PREFIX and PGARBITER_LAB_SUBNET, when set, replace every file's own name, so
// engineers sharing a machine each run the suite on their own lab (the files run one at a time,
// so one name serves them all).
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { type Lab, type LabUpOptions, labDown, labUp, loadLab, selfArgv } from '../../src/lab/index.js';
import { listNetns } from '../../src/lab/proc.js';
import { type LabIdentity, resolveIdentity } from '../../src/lab/topology.js';
import { waitHealthy } from '../../src/scenario/lab-run.js';
import { run } from '../../src/util/exec.js';

export const isRoot = process.getuid?.() === 0;
/** The `skip` option of a suite that needs network namespaces. */
export const needsRoot: false | string = isRoot ? false : 'needs root (network namespaces)';

/** This file's lab: the environment's prefix and subnet when set, else the file's own. */
export function labIdentity(own: LabIdentity): LabIdentity {
  return resolveIdentity({
    prefix: process.env.PGARBITER_LAB_PREFIX ? undefined : own.prefix,
    subnet: process.env.PGARBITER_LAB_SUBNET ? undefined : own.subnet,
  });
}

/**
 * A TCP port for a server a test runs in the machine's own namespace (not in a lab): `own` when
 * PGARBITER_LAB_SUBNET is not set, else one derived from that subnet, so two engineers with
 * their own subnets do not collide.
 */
export function testPort(own: number): number {
  const subnet = process.env.PGARBITER_LAB_SUBNET;
  if (!subnet) return own;
  const [, b, c] = resolveIdentity({ subnet }).subnet.split('.').map(Number) as [number, number, number];
  return own + 1 + ((b * 256 + c) % 1000);
}

/** The namespaces of lab `prefix` that exist now. */
export async function leftNamespaces(prefix: string): Promise<string[]> {
  return (await listNetns()).filter((n) => n.startsWith(`${prefix}-`));
}

/** Hooks of the enclosing suite: lab `prefix` down before (a crashed run's) and after, and then
 *  not one of its namespaces left. For files whose tests bring labs up themselves. */
export function cleanLabAround(prefix: string, teardown?: () => Promise<void>): void {
  before(async () => {
    if (isRoot) await labDown(prefix);
  });
  after(async () => {
    if (!isRoot) return;
    await teardown?.().catch(() => {});
    await labDown(prefix);
    assert.deepEqual(await leftNamespaces(prefix), [], 'no namespace of the test left behind');
  });
}

export interface UseLabOptions extends Omit<LabUpOptions, 'prefix' | 'subnet'> {
  /** Called with the lab once it is up (and healthy, when it runs PostgreSQL and agents). */
  ready?: (lab: Lab) => void | Promise<void>;
  /** Called before the lab goes down: stop what the file started on it. */
  teardown?: (lab: Lab) => Promise<unknown>;
}

/**
 * Hooks of the enclosing suite: a fresh lab `id` before its tests (waited for until healthy),
 * handed to `ready`; down after them, with nothing left behind.
 */
export function useLab(id: LabIdentity, o: UseLabOptions = {}): void {
  const { ready, teardown, ...up } = o;
  let lab: Lab | undefined;
  cleanLabAround(id.prefix, async () => {
    if (lab) await teardown?.(lab);
  });
  before(async () => {
    ({ lab } = await labUp({ ...up, prefix: id.prefix, subnet: id.subnet }));
    if (up.postgres !== false && up.agents !== false) await waitHealthy(lab);
    await ready?.(lab);
  });
}

/** `pgarbiter lab ...` as a user runs it (from the machine, not a lab host). Returns its stdout and
 *  the lab as it is on disk afterwards (the command may change it); a non-zero exit fails the test. */
export async function labCli(prefix: string, ...args: string[]): Promise<{ stdout: string; lab: Lab }> {
  const r = await run(selfArgv('lab', ...args, '--prefix', prefix), {
    timeoutMs: 60_000,
    allowFailure: true,
  });
  assert.equal(r.code, 0, `lab ${args.join(' ')}: ${r.stderr}`);
  return { stdout: r.stdout.trim(), lab: loadLab(prefix) };
}
