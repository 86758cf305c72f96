// The cluster's history (`pgarbiter history`): each member's own events (GET /history on the
// arbiter and on each agent), merged by time.
import Table from 'cli-table3';
import { ApiClient } from '../api/client.js';
import type { HistoryEntry } from '../api/protocol.js';
import type { Config } from '../config.js';

export interface ClusterHistory {
  /** Every member's entries, oldest first (ties: arbiter first, then by member and seq). */
  entries: HistoryEntry[];
  /** Members that did not answer: their events are missing from `entries`. */
  unreachable: string[];
}

export function mergeHistories(
  lists: { member: string; entries: HistoryEntry[] | null }[],
  arbiterName: string,
): ClusterHistory {
  const entries = lists.flatMap((l) => l.entries ?? []);
  const rank = (e: HistoryEntry) => (e.member === arbiterName ? 0 : 1);
  entries.sort(
    (a, b) =>
      Date.parse(a.at) - Date.parse(b.at) ||
      rank(a) - rank(b) ||
      a.member.localeCompare(b.member) ||
      a.seq - b.seq,
  );
  return { entries, unreachable: lists.filter((l) => l.entries === null).map((l) => l.member) };
}

export async function fetchClusterHistory(cfg: Config, timeoutMs = 3000): Promise<ClusterHistory> {
  const api = new ApiClient(cfg);
  const members = [{ name: cfg.arbiter.name, host: cfg.arbiter.host }, ...cfg.nodes];
  const bodies = await Promise.all(members.map((m) => api.history(m.host, timeoutMs)));
  return mergeHistories(
    members.map((m, i) => ({ member: m.name, entries: bodies[i]?.entries ?? null })),
    cfg.arbiter.name,
  );
}

/** Like `patronictl history`: one row per event. Times are UTC, to the millisecond. */
export function renderHistory(h: ClusterHistory, limit?: number): string {
  const rows = limit === undefined ? h.entries : h.entries.slice(-limit);
  const table = new Table({
    head: ['Time (UTC)', 'Member', 'Kind', 'Term', 'Rule', 'Detail'],
    style: { head: [], border: [] },
    wordWrap: true,
    colWidths: [null, null, null, null, null, 70],
  });
  for (const e of rows)
    table.push([
      e.at.replace('T', ' ').replace('Z', ''),
      e.member,
      e.kind,
      String(e.term),
      e.rule ?? '',
      e.count && e.count > 1 ? `${e.detail} (x${e.count} since ${e.firstAt})` : e.detail,
    ]);
  const lines = rows.length ? [table.toString()] : ['no events recorded'];
  for (const m of h.unreachable) lines.push(`${m} did not answer: its events are missing`);
  return lines.join('\n');
}
