// The terminal side of the demo: step headers, commands and their output, log excerpts, checks,
// and progress on waits. Colours only on a terminal (see util/color.ts).
import { color as pc } from '../util/color.js';
import { unlessAborted } from '../util/interrupt.js';
import type { Check, DemoOutcome, Entry, Marker, Step } from './transcript.js';

const out = (s: string) => process.stdout.write(`${s}\n`);
const indent = (s: string, n = 4) =>
  s
    .split('\n')
    .map((l) => `${' '.repeat(n)}${l}`)
    .join('\n');

export class Narrator {
  readonly steps: Step[] = [];
  readonly checks: Check[] = [];
  readonly markers: Marker[] = [];
  private current: Step | null = null;
  private readonly tty = process.stdout.isTTY === true;

  /** An interrupt (Ctrl-C) ends the run at the next step or wait. */
  constructor(private readonly signal?: AbortSignal) {}

  step(id: string, title: string, purpose: string): void {
    this.signal?.throwIfAborted();
    if (this.current) this.current.endedAt = Date.now();
    this.current = { id, title, purpose, startedAt: Date.now(), entries: [] };
    this.steps.push(this.current);
    out('');
    out(pc.bold(pc.cyan(`━━ Step ${id} — ${title}`)));
    out(pc.dim(`   ${purpose}`));
  }

  endStep(): void {
    if (this.current) this.current.endedAt = Date.now();
    this.current = null;
  }

  private add(e: Entry): void {
    this.current?.entries.push(e);
  }

  text(text: string): void {
    this.add({ kind: 'text', text });
    out(`  ${text}`);
  }

  command(cmd: string, output: string, ms: number, ok = true, host?: string): void {
    this.add({ kind: 'command', cmd, output, ms, ok, host });
    const where = host ? pc.dim(`[${host}] `) : '';
    out(`  ${where}${pc.green('$')} ${pc.bold(cmd)} ${pc.dim(`(${(ms / 1000).toFixed(2)} s)`)}`);
    if (output.trim()) out(indent(output.trimEnd()));
  }

  log(source: string, lines: string[]): void {
    this.add({ kind: 'log', source, lines });
    out(`  ${pc.magenta(`log ${source}:`)}`);
    out(indent(lines.length ? lines.join('\n') : '(no matching lines)'));
  }

  table(title: string, head: string[], rows: string[][]): void {
    this.add({ kind: 'table', title, head, rows });
    out(`  ${pc.bold(title)}`);
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
    const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
    out(indent(line(head), 4));
    for (const r of rows) out(indent(line(r), 4));
  }

  check(requirement: string, pass: boolean, evidence: string, ms?: number): void {
    this.checks.push({ step: this.current?.id ?? '', requirement, evidence, pass, ms });
    out(`  ${pass ? pc.green('✔ PASS') : pc.red('✘ FAIL')} ${requirement}${pc.dim(` — ${evidence}`)}`);
  }

  mark(label: string, t = Date.now()): void {
    this.markers.push({ t, label });
  }

  /** Runs a wait with visible progress (a ticking line on a terminal, one line when piped). */
  async waiting<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const t0 = Date.now();
    if (!this.tty) out(pc.dim(`  … ${what}`));
    const timer = this.tty
      ? setInterval(
          () =>
            process.stdout.write(`\r  ${pc.yellow('…')} ${what} ${((Date.now() - t0) / 1000).toFixed(1)} s`),
          200,
        )
      : null;
    try {
      return await unlessAborted(fn(), this.signal);
    } finally {
      if (timer) {
        clearInterval(timer);
        process.stdout.write('\r\x1b[K');
      }
      out(pc.dim(`  ${what}: ${((Date.now() - t0) / 1000).toFixed(1)} s`));
    }
  }
}

export function printOutcomeHeader(o: Pick<DemoOutcome, 'ok'>): void {
  out('');
  out(
    o.ok
      ? pc.bold(pc.green('All requirements of the assignment passed.'))
      : pc.bold(pc.red('Some requirements FAILED (see above).')),
  );
}
