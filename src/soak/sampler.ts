// The soak's sampler: runs inside the lab's client host (only code inside a namespace reaches the
// lab) and prints one JSON line per round: the arbiter's record, each agent's /state, and each
// node's PostgreSQL as a client sees it (pg_is_in_recovery() over TCP; a fenced node refuses).

import { fetchClusterView } from '../cluster/view.js';
import type { Config } from '../config.js';
import { closeClient, makeClient } from '../postgres/client.js';
import { sleep } from '../util/exec.js';
import type { NodeName, NodeSample, Sample } from './checker.js';

async function pgInRecovery(host: string, port: number, password: string | undefined, timeoutMs: number) {
  const c = makeClient({
    host,
    port,
    user: 'app',
    password,
    connectTimeoutMs: timeoutMs,
    queryTimeoutMs: timeoutMs,
    applicationName: 'pgarbiter-soak-sampler',
  });
  try {
    await c.connect();
    const r = await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
    return r.rows[0]?.r ?? null;
  } catch {
    return null;
  } finally {
    await closeClient(c);
  }
}

export async function sampleOnce(
  cfg: Config,
  password: string | undefined,
  timeoutMs: number,
): Promise<Sample> {
  const t = Date.now();
  const [view, ...pgs] = await Promise.all([
    fetchClusterView(cfg, timeoutMs),
    ...cfg.nodes.map((n) => pgInRecovery(n.host, cfg.postgres.port, password, timeoutMs)),
  ]);
  const rec = view.arbiter.state?.record;
  const nodes = {} as Record<NodeName, NodeSample>;
  cfg.nodes.forEach((n, i) => {
    const s = view.nodes[i]?.state;
    nodes[n.name as NodeName] = {
      agent: s
        ? {
            term: s.record.term,
            recordPrimary: s.record.primary,
            role: s.role,
            phase: s.phase,
            fenced: s.fenced,
            inRecovery: s.postgres.inRecovery,
            receiving: s.postgres.receiving,
            timeline: s.postgres.timeline,
          }
        : null,
      pgInRecovery: pgs[i] ?? null,
    };
  });
  return {
    t,
    arbiter: rec
      ? {
          term: rec.term,
          primary: rec.primary,
          standby: rec.standby,
          promotable: rec.standbyPromotable,
          maintenance: rec.maintenance,
        }
      : null,
    nodes,
  };
}

/** Samples every `intervalMs` until stdin closes or the process is signalled (bounded: the soak
 *  that started it ends it). */
export async function runSampler(
  cfg: Config,
  intervalMs: number,
  password: string | undefined,
): Promise<void> {
  let stop = false;
  process.stdin.on('end', () => {
    stop = true;
  });
  process.stdin.resume();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => (stop = true));
  // Generous: on a loaded machine a short deadline would read as a member that does not answer.
  const timeoutMs = 1500;
  while (!stop) {
    const t0 = Date.now();
    const s = await sampleOnce(cfg, password, timeoutMs);
    process.stdout.write(`${JSON.stringify(s)}\n`);
    await sleep(Math.max(0, intervalMs - (Date.now() - t0)));
  }
}
