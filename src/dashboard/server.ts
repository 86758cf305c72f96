// `pgarbiter dashboard`: one page, pushed updates (Server-Sent Events), buttons for the lab's
// faults and the cluster's operations. The server runs in the machine's own namespace; it reaches
// the lab only as the other tools do: the lab API (src/lab) for faults and link state, and our
// own CLI run inside the lab's client host for the cluster's status and history (only code inside
// the lab reaches its members). With a config file it reads a real deployment over ApiClient.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { type AgentStatus, agentStatusSchema } from '../api/protocol.js';
import { fetchClusterHistory } from '../cluster/history.js';
import { type ClusterView, fetchClusterView } from '../cluster/view.js';
import { type Config, loadConfig } from '../config.js';
import {
  configPath,
  freeze,
  heal,
  hostArgv,
  isolate,
  type Lab,
  labApiCurl,
  labStatus,
  partition,
  readLab,
  selfArgv,
  setLoss,
  startMember,
  stopMember,
  thaw,
  unpartition,
} from '../lab/index.js';
import { cliIn, clusterView, type LabWriter, startLabWriter } from '../scenario/lab-run.js';
import { UserError } from '../util/errors.js';
import { run } from '../util/exec.js';
import { LedgerTail } from '../workload/ledger.js';
import {
  type Action,
  actionEvent,
  type DashEvent,
  deriveLinks,
  historyEvent,
  LAB_ONLY_ACTIONS,
  type Links,
  type NodeRow,
  nodeRows,
  parseAction,
  parseHistoryJson,
  type RatePoint,
  tokenMatches,
  writesPerSecond,
} from './model.js';
import { renderPage } from './page.js';

export interface DashboardOptions {
  /** The lab's prefix (lab mode), or a config file (a real deployment). */
  prefix?: string;
  configFile?: string;
  port: number;
  listen?: string;
  /** Lab mode: serve even when no lab is up yet (the demo brings it up), and wait for it. */
  waitForLab?: boolean;
  /** The token for the buttons; random when not given. */
  token?: string;
  pollMs?: number;
}

export interface Snapshot {
  mode: 'lab' | 'config';
  name: string;
  at: number;
  /** One line when the source cannot be read (no lab, status failed), else null. */
  problem: string | null;
  links: Links | null;
  nodes: NodeRow[];
  arbiter: { reachable: boolean; term: number | null; primary: string | null; maintenance: boolean | null };
  writer: { running: boolean; ledger: string | null; acks: number; fails: number };
  rate: RatePoint[];
  events: DashEvent[];
  labActions: boolean;
}

export interface Dashboard {
  url: string;
  token: string;
  snapshot(): Snapshot | null;
  close(): Promise<void>;
}

const WINDOW_MS = 180_000;

export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  const listen = o.listen ?? '127.0.0.1';
  const token = o.token ?? randomBytes(16).toString('hex');
  let cfg: Config | null = null;
  if (o.configFile) cfg = loadConfig(o.configFile);
  else if (!o.prefix) throw new UserError('dashboard: give a lab prefix or --config FILE');
  const prefix = o.prefix ?? '';
  if (!cfg && !o.waitForLab && !readLab(prefix))
    throw new UserError(`no lab "${prefix}" is up: run \`pgarbiter lab up --prefix ${prefix}\` first`);
  const mode: Snapshot['mode'] = cfg ? 'config' : 'lab';
  const name = cfg ? cfg.cluster_name : `lab ${prefix}`;

  const frozen = new Set<string>();
  const events = new Map<string, DashEvent>();
  let writer: LabWriter | null = null;
  let tail: LedgerTail | null = null;
  let last: Snapshot | null = null;
  const clients = new Set<ServerResponse>();
  let closed = false;

  const addEvent = (e: DashEvent) => {
    events.set(e.key, e);
    if (events.size > 400) {
      const oldest = [...events.values()].sort((a, b) => a.t - b.t).slice(0, events.size - 400);
      for (const x of oldest) events.delete(x.key);
    }
  };

  const lab = (): Lab => {
    const l = readLab(prefix);
    if (!l?.complete) throw new UserError(`no lab "${prefix}" is up`);
    return l;
  };

  /** A node's state read from inside its own host (the client cannot reach an isolated one). */
  const selfState = async (l: Lab, host: 'pg1' | 'pg2'): Promise<AgentStatus | null> => {
    const r = await run(
      hostArgv(l, host, labApiCurl(l, host, host, '/state', { timeoutS: 1, local: true })),
      {
        timeoutMs: 4000,
        allowFailure: true,
      },
    );
    if (r.code !== 0) return null;
    try {
      const p = agentStatusSchema.safeParse(JSON.parse(r.stdout));
      return p.success ? p.data : null;
    } catch {
      return null;
    }
  };

  const ledgerPath = (l: Lab): string | null => {
    if (writer) return writer.ledger;
    const demo = join(l.hosts.client.dir, 'demo-writer.jsonl');
    return existsSync(demo) ? demo : null;
  };

  async function poll(): Promise<Snapshot> {
    const now = Date.now();
    const snap: Snapshot = {
      mode,
      name,
      at: now,
      problem: null,
      links: null,
      nodes: [],
      arbiter: { reachable: false, term: null, primary: null, maintenance: null },
      writer: { running: writer !== null && writer.proc.exitCode === null, ledger: null, acks: 0, fails: 0 },
      rate: [],
      events: [],
      labActions: mode === 'lab',
    };
    let view: ClusterView | null = null;
    try {
      if (cfg) {
        const [v, h] = await Promise.all([fetchClusterView(cfg), fetchClusterHistory(cfg)]);
        view = v;
        for (const e of h.entries) addEvent(historyEvent(e));
        snap.nodes = nodeRows(view);
      } else {
        const l = lab();
        const [hosts, v, hist] = await Promise.all([
          labStatus(l),
          clusterView(l),
          cliIn(l, 'client', ['history', '--json', '--config', configPath(l, 'client')], {}, 15_000),
        ]);
        view = v;
        snap.links = deriveLinks(hosts, l.partitions, l.losses ?? {}, frozen);
        const fallback: Record<string, AgentStatus | null> = {};
        await Promise.all(
          (['pg1', 'pg2'] as const)
            .filter((h) => !v.nodes.find((n) => n.name === h)?.state && !frozen.has(h))
            .map(async (h) => {
              fallback[h] = await selfState(l, h);
            }),
        );
        snap.nodes = nodeRows(view, fallback);
        if (hist.stdout.trim())
          for (const e of parseHistoryJson(hist.stdout).entries) addEvent(historyEvent(e));
        const path = ledgerPath(l);
        if (path && tail?.path !== path) tail = new LedgerTail(path);
      }
    } catch (e) {
      snap.problem = (e as Error).message.split('\n')[0] ?? String(e);
    }
    if (view) {
      const rec = view.arbiter.state?.record;
      snap.arbiter = {
        reachable: view.arbiter.reachable,
        term: rec?.term ?? null,
        primary: rec?.primary ?? null,
        maintenance: rec?.maintenance ?? null,
      };
    }
    if (tail) {
      try {
        const txs = tail.poll();
        snap.writer.ledger = tail.path;
        snap.writer.acks = txs.filter((t) => t.outcome === 'ack').length;
        snap.writer.fails = txs.length - snap.writer.acks;
        const end = Date.now();
        // From the writer's first transaction (not a window of zeros before it), at most WINDOW_MS.
        const first = txs[0]?.t ?? end;
        snap.rate = writesPerSecond(txs, Math.max(end - WINDOW_MS, first - 2000), end);
      } catch (e) {
        snap.problem ??= `ledger: ${(e as Error).message}`;
      }
    }
    snap.events = [...events.values()].sort((a, b) => b.t - a.t).slice(0, 200);
    return snap;
  }

  const push = (s: Snapshot) => {
    const data = `data: ${JSON.stringify(s)}\n\n`;
    for (const c of clients) c.write(data);
  };

  let timer: NodeJS.Timeout | undefined;
  const loop = async () => {
    if (closed) return;
    last = await poll();
    push(last);
    if (!closed) timer = setTimeout(loop, o.pollMs ?? 1000);
  };

  async function perform(a: Action): Promise<string> {
    if (cfg) {
      const base = a.action === 'switchover' ? ['switchover', ...(a.to ? ['--to', a.to] : [])] : [];
      const args = a.action === 'maintenance' ? ['maintenance', a.on ? 'on' : 'off'] : base;
      const r = await run(selfArgv(...args, '--config', o.configFile!), {
        timeoutMs: 120_000,
        allowFailure: true,
      });
      if (r.code !== 0) throw new Error(r.stderr.trim().split('\n').pop() ?? `exit ${r.code}`);
      return r.stdout.trim().split('\n').pop() ?? 'done';
    }
    const l = lab();
    switch (a.action) {
      case 'isolate':
        await isolate(l, a.host);
        return 'e0 down';
      case 'heal':
        await heal(l, a.host);
        return 'e0 up, on br0';
      case 'partition':
        await partition(l, a.a, a.b);
        return 'traffic dropped in the switch';
      case 'unpartition':
        await unpartition(l);
        return 'all partitions removed';
      case 'freeze':
        frozen.add(a.host);
        return `${(await freeze(l, a.host)).length} processes stopped`;
      case 'thaw':
        frozen.delete(a.host);
        return `${(await thaw(l, a.host)).length} processes continued`;
      case 'kill':
        return stopMember(l, a.host, { part: 'both', kill: true });
      case 'start':
        return startMember(l, a.host);
      case 'loss':
        await setLoss(l, a.host, a.percent);
        return a.percent ? `${a.percent} % of its packets dropped` : 'no packet loss';
      case 'writer-start': {
        if (writer && writer.proc.exitCode === null) throw new Error('a writer is already running');
        const ledger = join(l.hosts.client.dir, `dashboard-writer-${Date.now()}.jsonl`);
        writer = startLabWriter(l, { ledger, sessions: 4, rate: 50 });
        tail = new LedgerTail(ledger);
        return `4 sessions at 50 tx/s each, ledger ${ledger}`;
      }
      case 'writer-stop': {
        if (!writer) throw new Error('no writer is running');
        const w = writer;
        writer = null;
        const summary = await w.stop();
        return `stopped: ${JSON.stringify(summary).slice(0, 160)}`;
      }
      case 'switchover':
      case 'maintenance': {
        const args =
          a.action === 'switchover'
            ? ['switchover', ...(a.to ? ['--to', a.to] : [])]
            : ['maintenance', a.on ? 'on' : 'off'];
        const r = await cliIn(l, 'client', [...args, '--config', configPath(l, 'client')], {}, 120_000);
        if (r.code !== 0) throw new Error(r.stderr.trim().split('\n').pop() ?? `exit ${r.code}`);
        return r.stdout.trim().split('\n').pop() ?? 'done';
      }
    }
  }

  const tokens = (): string[] => {
    const secret = cfg ? cfg.secret : (readLab(prefix)?.secrets.secret ?? '');
    return [token, secret];
  };

  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  };

  async function readJson(req: IncomingMessage): Promise<unknown> {
    let text = '';
    for await (const chunk of req) {
      text += chunk;
      if (text.length > 10_000) throw new Error('body too large');
    }
    return JSON.parse(text);
  }

  const page = renderPage();
  const server: Server = createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    try {
      if (req.method === 'GET' && path === '/') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        res.end(page);
      } else if (req.method === 'GET' && path === '/events') {
        res.writeHead(200, {
          'content-type': 'text/event-stream',
          'cache-control': 'no-store',
          connection: 'keep-alive',
        });
        res.write('retry: 2000\n\n');
        if (last) res.write(`data: ${JSON.stringify(last)}\n\n`);
        clients.add(res);
        req.on('close', () => clients.delete(res));
      } else if (req.method === 'GET' && path === '/api/state') {
        send(res, last ? 200 : 503, last ?? { error: 'not read yet' });
      } else if (req.method === 'POST' && path === '/api/action') {
        if (!tokenMatches(req.headers.authorization, tokens()))
          return send(res, 401, { error: 'bad token: use the token printed when the dashboard started' });
        let body: unknown;
        try {
          body = await readJson(req);
        } catch {
          return send(res, 400, { error: 'the body must be JSON' });
        }
        const p = parseAction(body);
        if (!p.ok) return send(res, 400, { error: p.error });
        if (mode === 'config' && LAB_ONLY_ACTIONS.includes(p.action.action))
          return send(res, 400, {
            error: `${p.action.action} needs the lab: this dashboard watches a deployment`,
          });
        const t = Date.now();
        try {
          const result = await perform(p.action);
          addEvent(actionEvent(t, p.action, result, true));
          send(res, 200, { ok: true, result });
        } catch (e) {
          const msg = (e as Error).message.split('\n')[0] ?? 'failed';
          addEvent(actionEvent(t, p.action, msg, false));
          send(res, 409, { ok: false, error: msg });
        }
      } else send(res, 404, { error: `no ${req.method} ${path}` });
    } catch (e) {
      if (!res.headersSent) send(res, 500, { error: (e as Error).message });
    }
  });
  server.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        e.code === 'EADDRINUSE'
          ? new UserError(`port ${o.port} on ${listen} is already in use: choose another with --port`)
          : e.code === 'EADDRNOTAVAIL'
            ? new UserError(`cannot listen on ${listen}: no such address on this machine`)
            : e,
      ),
    );
    server.listen(o.port, listen, () => resolve());
  });
  void loop();
  const host = listen.includes(':') ? `[${listen}]` : listen;
  return {
    url: `http://${host}:${o.port}/`,
    token,
    snapshot: () => last,
    async close() {
      closed = true;
      clearTimeout(timer);
      for (const c of clients) c.end();
      clients.clear();
      if (writer) await writer.stop().catch(() => {});
      writer = null;
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
    },
  };
}
