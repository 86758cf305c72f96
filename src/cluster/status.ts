// `pgarbiter status` as a table: each node, its role, state, term/timeline, LSN, lag, fence and
// what it reaches, then the arbiter and the record.
import Table from 'cli-table3';
import { color as pc } from '../util/color.js';
import { type ClusterView, newestRecord, nodeState } from './view.js';

const fmtBytes = (n: number | null) =>
  n === null
    ? ''
    : n < 1024
      ? `${n} B`
      : n < 1048576
        ? `${(n / 1024).toFixed(1)} kB`
        : `${(n / 1048576).toFixed(1)} MB`;

export function renderStatus(view: ClusterView): string {
  // With the arbiter unreachable, the agents still know the record (and each its own role).
  const rec = newestRecord(view);
  const table = new Table({
    head: ['Node', 'Host', 'Role', 'State', 'Term/TL', 'LSN', 'Lag', 'Fenced', 'Reaches'],
    style: { head: [], border: [] },
  });
  for (const n of view.nodes) {
    const s = n.state;
    const reaches = s
      ? [
          `arbiter:${s.reach.arbiter ? 'yes' : 'NO'}`,
          `peer:${s.reach.peerAgent ? 'yes' : 'NO'}`,
          ...(s.reach.primaryPostgres === null
            ? []
            : [`primary-pg:${s.reach.primaryPostgres ? 'yes' : 'NO'}`]),
        ].join(' ')
      : '';
    const role = s ? s.role : rec?.primary === n.name ? 'primary?' : '?';
    table.push([
      n.name,
      n.host,
      role,
      // The phase too where it says more than the state (fenced-isolated, rejoining, ...).
      s && !['primary', 'standby', nodeState(s)].includes(s.phase)
        ? `${nodeState(s)} (${s.phase})`
        : nodeState(s),
      s ? `${s.term}/${s.postgres.timeline ?? '-'}` : '',
      s?.postgres.lsn ?? '',
      fmtBytes(s?.replication.replayLagBytes ?? null),
      s ? (s.fenced ? 'YES' : 'no') : '',
      reaches,
    ]);
  }
  const arb = view.arbiter.state;
  table.push([
    'arbiter',
    view.arbiter.host,
    'arbiter',
    arb ? 'running' : 'unreachable',
    rec ? `${rec.term}` : '',
    '',
    '',
    '',
    arb ? `primary-pg:${arb.primaryReachable ? 'yes' : 'NO'}` : '',
  ]);
  const lines = [table.toString()];
  if (rec && !arb)
    lines.push(pc.yellow(`arbiter unreachable: the record below is the newest an agent holds`));
  if (rec)
    lines.push(
      `term ${rec.term}: primary ${rec.primary}, standby ${rec.standby} ` +
        `(${rec.standbyPromotable ? 'promotable' : 'NOT promotable'})${rec.maintenance ? pc.yellow(' MAINTENANCE: automatic failover paused') : ''}`,
    );
  for (const n of view.nodes) {
    const lease = n.state?.lease;
    if (lease?.enabled && lease.remainingMs)
      lines.push(
        `${n.name} holds the lease: its clients are served ${(lease.remainingMs / 1000).toFixed(1)} s more unless its agent renews it`,
      );
  }
  for (const n of view.nodes)
    if (n.state?.lastRejoin) {
      const r = n.state.lastRejoin;
      lines.push(
        `${n.name} last rejoined ${r.at} by ${r.method} in ${r.ms} ms` +
          (r.discardedCommits
            ? pc.yellow(`: ${r.discardedCommits} transactions committed only there were discarded`)
            : ''),
      );
    }
  return lines.join('\n');
}
