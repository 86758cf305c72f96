// The soak's nemesis: plays a schedule's faults against a running lab, at their times, alone and
// overlapping, through the lab's own functions (src/lab) in this process; operator actions go
// through our CLI on the client host, as a person would run them.
import {
  configPath,
  daemonAlive,
  freeze,
  heal,
  type IsolateMode,
  isolate,
  type Lab,
  oneWay,
  partition,
  setLoss,
  startMember,
  stopMember,
  thaw,
  unpartition,
} from '../lab/index.js';
import { HOSTS, type HostName } from '../lab/topology.js';
import { cliIn } from '../scenario/lab-run.js';
import { sleep } from '../util/exec.js';
import type { Fault, Role } from './schedule.js';

export interface Roles {
  primary: 'pg1' | 'pg2';
  standby: 'pg1' | 'pg2';
  /** The arbiter's record says the standby may be promoted. */
  promotable: boolean;
}

export interface AppliedFault {
  fault: Fault;
  /** The hosts the roles resolved to when the fault started. */
  host: string | null;
  peer: string | null;
  startedAt: number;
  endedAt: number | null;
  /** What was done, or why it was skipped (a conflicting fault on the same thing). */
  note: string;
  skipped: boolean;
  error?: string;
}

export const MEMBER_DAEMONS = ['arbiter', 'agent-pg1', 'agent-pg2', 'haproxy'] as const;

const daemonOf = (host: HostName) => (host === 'arbiter' ? 'arbiter' : `agent-${host}`);

export class Nemesis {
  /** What each running fault holds (a host's link, a pair, a daemon): overlapping faults on the
   *  same thing would undo each other, so the later one is skipped. */
  private readonly busy = new Set<string>();
  /** Daemons a fault stopped and has not started again. */
  readonly stopped = new Set<string>();

  constructor(
    private readonly lab: Lab,
    private readonly mode: IsolateMode,
    private readonly roles: () => Roles,
    private readonly say: (line: string) => void,
  ) {}

  private hostOf(r: Role, roles: Roles): HostName {
    return r === 'arbiter' ? 'arbiter' : roles[r];
  }

  private cli(args: string[], timeoutMs = 45_000) {
    return cliIn(this.lab, 'client', [...args, '--config', configPath(this.lab, 'client')], {}, timeoutMs);
  }

  /** Plays every fault at its time (relative to `t0`), each ending after its duration; resolves
   *  when every fault has ended. */
  async play(faults: readonly Fault[], t0: number, signal?: AbortSignal): Promise<AppliedFault[]> {
    const applied: AppliedFault[] = [];
    const runs = faults.map(async (f) => {
      await sleep(Math.max(0, t0 + f.atMs - Date.now()));
      signal?.throwIfAborted();
      const a = await this.start(f);
      applied.push(a);
      if (a.skipped || a.error) return;
      await sleep(Math.max(0, a.startedAt + f.durationMs - Date.now()));
      try {
        await this.end(f, a);
      } catch (e) {
        a.error = `ending it failed: ${(e as Error).message.split('\n')[0]}`;
      }
      a.endedAt = Date.now();
    });
    const results = await Promise.allSettled(runs);
    for (const r of results) if (r.status === 'rejected') throw r.reason;
    return applied.sort((x, y) => x.startedAt - y.startedAt);
  }

  private keys(f: Fault, host: HostName | null, peer: HostName | null): string[] {
    switch (f.kind) {
      case 'isolate':
        return [`link:${host}`];
      case 'partition':
        return [`pair:${[host, peer].sort().join('-')}`];
      case 'one-way':
        return [`oneway:${host}>${peer}`];
      case 'loss':
        return [`loss:${host}`];
      case 'freeze':
        return [`freeze:${host}`];
      case 'stop-postgres':
      case 'kill-postgres':
        return [`pg:${host}`];
      case 'stop-daemon':
      case 'kill-daemon':
        return [`daemon:${host}`];
      case 'arbiter-restart-in-failover':
        return [`link:${host}`, 'daemon:arbiter'];
      default:
        return ['operator'];
    }
  }

  private async start(f: Fault): Promise<AppliedFault> {
    const roles = this.roles();
    const target = 'target' in f ? f.target : f.kind === 'arbiter-restart-in-failover' ? 'primary' : null;
    const host = target ? this.hostOf(target, roles) : null;
    const peer = 'peer' in f ? this.hostOf(f.peer, roles) : null;
    const a: AppliedFault = {
      fault: f,
      host,
      peer,
      startedAt: Date.now(),
      endedAt: null,
      note: '',
      skipped: false,
    };
    const keys = this.keys(f, host, peer);
    const held = keys.find((k) => this.busy.has(k));
    if (held) {
      a.skipped = true;
      a.note = `skipped: ${held} is held by an earlier fault`;
      return a;
    }
    for (const k of keys) this.busy.add(k);
    a.note = 'held';
    try {
      a.note = await this.apply(f, host, peer, roles);
      this.say(`  + ${f.kind}${host ? ` ${host}` : ''}${peer ? ` ${peer}` : ''}: ${a.note}`);
    } catch (e) {
      a.error = (e as Error).message.split('\n')[0];
      this.say(`  ! ${f.kind}: ${a.error}`);
      for (const k of keys) this.busy.delete(k);
    }
    if (f.durationMs === 0) for (const k of keys) this.busy.delete(k);
    if (f.durationMs === 0) a.endedAt = Date.now();
    return a;
  }

  private async apply(f: Fault, host: HostName | null, peer: HostName | null, roles: Roles): Promise<string> {
    const lab = this.lab;
    const h = host as HostName;
    const p = peer as HostName;
    switch (f.kind) {
      case 'isolate':
        await isolate(lab, h, this.mode);
        return `isolated (${this.mode})`;
      case 'partition':
        await partition(lab, h, p);
        return 'partitioned';
      case 'one-way':
        await oneWay(lab, h, p, true);
        return `dropping ${h} -> ${p}`;
      case 'loss':
        await setLoss(lab, h, f.percent);
        return `${f.percent} % loss`;
      case 'freeze':
        return `froze ${(await freeze(lab, h)).length} processes`;
      case 'stop-postgres':
      case 'kill-postgres':
        return stopMember(lab, h as 'pg1' | 'pg2', { part: 'postgres', kill: f.kind === 'kill-postgres' });
      case 'stop-daemon':
      case 'kill-daemon': {
        const what = await stopMember(lab, h as 'pg1' | 'pg2' | 'arbiter', {
          part: h === 'arbiter' ? 'both' : 'agent',
          kill: f.kind === 'kill-daemon',
        });
        this.stopped.add(daemonOf(h));
        return what;
      }
      case 'arbiter-restart-in-failover': {
        await isolate(lab, h, this.mode);
        await sleep(f.delayMs);
        this.stopped.add('arbiter');
        await stopMember(lab, 'arbiter', { kill: true });
        await sleep(f.downMs);
        await startMember(lab, 'arbiter');
        this.stopped.delete('arbiter');
        return `isolated the primary, arbiter kill -9 at ${f.delayMs} ms and back ${f.downMs} ms later`;
      }
      case 'switchover': {
        const r = await this.cli(['switchover', '--json', '--timeout', '30']);
        return r.code === 0 ? `done: ${r.stdout.trim()}` : `refused/failed: ${lastLine(r.stderr)}`;
      }
      case 'maintenance': {
        const r = await this.cli(['maintenance', 'on'], 15_000);
        if (r.code !== 0) throw new Error(`maintenance on failed: ${lastLine(r.stderr)}`);
        return 'maintenance on';
      }
      case 'force-failover': {
        // Only onto a standby the arbiter calls promotable: forcing a lagging one loses writes
        // by design (the command says so), which is not what the soak tests.
        if (!roles.promotable) return 'not issued: the standby is not promotable';
        const r = await this.cli(['failover', '--to', roles.standby, '--force'], 15_000);
        return r.code === 0
          ? `forced onto ${roles.standby}: ${lastLine(r.stdout)}`
          : `refused: ${lastLine(r.stderr)}`;
      }
    }
  }

  private async end(f: Fault, a: AppliedFault): Promise<void> {
    const lab = this.lab;
    const h = a.host as HostName;
    const p = a.peer as HostName;
    try {
      switch (f.kind) {
        case 'isolate':
        case 'arbiter-restart-in-failover':
          await heal(lab, h);
          break;
        case 'partition':
          await unpartition(lab, h, p);
          break;
        case 'one-way':
          await oneWay(lab, h, p, false);
          break;
        case 'loss':
          await setLoss(lab, h, 0);
          break;
        case 'freeze':
          await thaw(lab, h);
          break;
        case 'stop-daemon':
        case 'kill-daemon':
          await this.startIfStopped(daemonOf(h), h as 'pg1' | 'pg2' | 'arbiter');
          break;
        case 'maintenance': {
          const r = await this.cli(['maintenance', 'off'], 15_000);
          if (r.code !== 0) throw new Error(`maintenance off failed: ${lastLine(r.stderr)}`);
          break;
        }
        default:
          break; // PostgreSQL is started again by its agent; one-shot actions have no end.
      }
    } finally {
      for (const k of this.keys(f, a.host as HostName, a.peer as HostName)) this.busy.delete(k);
    }
  }

  private async startIfStopped(name: string, host: 'pg1' | 'pg2' | 'arbiter') {
    const rec = this.lab.daemons[name];
    if (!rec || !daemonAlive(rec)) await startMember(this.lab, host);
    this.stopped.delete(name);
  }

  /** Daemons that are not running although no fault stopped them. */
  deadDaemons(): string[] {
    return MEMBER_DAEMONS.filter((n) => {
      const rec = this.lab.daemons[n];
      return !this.stopped.has(n) && !(rec && daemonAlive(rec));
    });
  }

  /** Undoes whatever a fault may have left (after an error or an interrupt): every host thawed
   *  and healed, no partition, drop or loss, maintenance off, every member daemon running. */
  async healAll(): Promise<void> {
    const lab = this.lab;
    for (const h of HOSTS) await thaw(lab, h);
    for (const h of HOSTS) await heal(lab, h);
    lab.oneWay = [];
    lab.losses = {};
    await unpartition(lab);
    for (const n of ['arbiter', 'agent-pg1', 'agent-pg2'] as const) {
      const rec = lab.daemons[n];
      if (!rec || !daemonAlive(rec))
        await startMember(lab, n === 'arbiter' ? 'arbiter' : n === 'agent-pg1' ? 'pg1' : 'pg2');
    }
    this.stopped.clear();
    this.busy.clear();
  }

  /** Maintenance off, if the arbiter says it is on. */
  async maintenanceOff(): Promise<void> {
    await this.cli(['maintenance', 'off'], 15_000);
  }
}

const lastLine = (s: string) => s.trim().split('\n').pop() ?? '';
