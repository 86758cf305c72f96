// A member's history of notable events (GET /history, `pgarbiter history`): bounded to the last
// `max` entries, kept in state_dir as JSON lines, loaded again at start.
//
// The file is append-only between compactions: a new entry is one line; a repeat (a refusal given
// again) is the same entry (same `seq`) written again with its count, and the last line of a seq
// wins when the file is read. When the file holds twice `max` lines it is rewritten atomically
// with the entries kept. A bad line (torn by a crash, edited by hand) is skipped; an unreadable
// file gives an empty history. History is a record for people: writing it never stops a daemon
// (failures go to `warn`), and appends are not fsynced (the cluster record is, separately).
import { appendFileSync, readFileSync } from 'node:fs';
import {
  type HistoryBody,
  type HistoryEntry,
  type HistoryKind,
  historyEntrySchema,
} from '../api/protocol.js';
import { writeFileAtomic } from '../util/atomic.js';

export const HISTORY_MAX = 1000;

export interface NewHistoryEntry {
  kind: HistoryKind;
  term: number;
  rule: string | null;
  detail: string;
}

export class HistoryStore {
  private entries: HistoryEntry[] = [];
  private nextSeq = 0;
  private fileLines = 0;

  constructor(
    readonly path: string,
    readonly member: string,
    readonly max = HISTORY_MAX,
    private readonly warn: (msg: string) => void = () => {},
    private readonly now: () => Date = () => new Date(),
  ) {
    this.load();
  }

  private load(): void {
    let text = '';
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        this.warn(`history ${this.path} unreadable (${(e as Error).message}): starting an empty one`);
      return;
    }
    const bySeq = new Map<number, HistoryEntry>();
    let bad = 0;
    const lines = text.split('\n').filter((l) => l.trim() !== '');
    for (const line of lines) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        bad++;
        continue;
      }
      const r = historyEntrySchema.safeParse(parsed);
      if (r.success) bySeq.set(r.data.seq, r.data);
      else bad++;
    }
    this.entries = [...bySeq.values()].sort((a, b) => a.seq - b.seq).slice(-this.max);
    this.nextSeq = (this.entries[this.entries.length - 1]?.seq ?? -1) + 1;
    this.fileLines = lines.length;
    if (bad > 0) {
      this.warn(`history ${this.path}: ${bad} unreadable line(s) skipped`);
      this.compact();
    }
  }

  /** Records an event; returns the entry. */
  add(e: NewHistoryEntry): HistoryEntry {
    const entry: HistoryEntry = {
      seq: this.nextSeq++,
      at: this.now().toISOString(),
      member: this.member,
      ...e,
    };
    this.entries.push(entry);
    if (this.entries.length > this.max) this.entries.splice(0, this.entries.length - this.max);
    this.write(entry);
    return entry;
  }

  /** Like add, but when `same(last entry)` the last entry is counted again instead (its time,
   *  term and detail become the new one's, its first time is kept). */
  addOrRepeat(e: NewHistoryEntry, same: (last: HistoryEntry) => boolean): HistoryEntry {
    const last = this.entries[this.entries.length - 1];
    if (!last || !same(last)) return this.add(e);
    const at = this.now().toISOString();
    const updated: HistoryEntry = {
      ...last,
      ...e,
      at,
      firstAt: last.firstAt ?? last.at,
      count: (last.count ?? 1) + 1,
    };
    this.entries[this.entries.length - 1] = updated;
    this.write(updated);
    return updated;
  }

  list(): HistoryEntry[] {
    return this.entries.slice();
  }

  body(): HistoryBody {
    return { member: this.member, entries: this.list() };
  }

  private write(entry: HistoryEntry): void {
    try {
      if (this.fileLines + 1 >= 2 * this.max) {
        this.compact();
        return;
      }
      appendFileSync(this.path, `${JSON.stringify(entry)}\n`, { mode: 0o600 });
      this.fileLines++;
    } catch (e) {
      this.warn(`cannot write history ${this.path}: ${(e as Error).message}`);
    }
  }

  /** Rewrites the file atomically with the entries kept. */
  private compact(): void {
    try {
      writeFileAtomic(this.path, this.entries.map((x) => `${JSON.stringify(x)}\n`).join(''));
      this.fileLines = this.entries.length;
    } catch (e) {
      this.warn(`cannot rewrite history ${this.path}: ${(e as Error).message}`);
    }
  }
}
