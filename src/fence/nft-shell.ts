// One long-lived `nft -i` for a command run every other round (the lease). Spawning nft each time
// made the Node process fork itself, which cost an idle primary's agent more CPU than its
// HTTP and SQL put together; a line written to a running nft costs a pipe write.
//
// nft reads one command line at a time and commits each line as one transaction, so a script of
// several statements is sent as one line (statements joined with `;`). Its stderr goes to the
// same pipe as its stdout (2>&1), so what it prints stays in order: after each command we send
// MARKER_COMMAND, whose one-line answer ends that command's output. Output with a line that
// starts with `Error:` is a failed command. A command not answered in time, or a shell that died,
// fails, and the next command starts a new shell.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { inNetns } from '../util/exec.js';

/** A command that always succeeds and prints one known line: the end of each answer. */
const MARKER_COMMAND = 'describe meta mark';
const MARKER_LINE = /^meta expression, datatype mark .*$/m;

export interface NftAnswer {
  ok: boolean;
  /** What nft printed for the command (its listing, or its error). */
  output: string;
}

/** A multi-line nft script as one line (one line is one transaction in `nft -i`). Comment lines
 *  are dropped: joined, a `#` would comment out the rest of the script. */
export function nftOneLine(script: string): string {
  return script
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('#'))
    .join('; ');
}

export class NftShell {
  private proc: ChildProcessWithoutNullStreams | null = null;
  private buffer = '';
  private waiting: ((text: string | null) => void) | null = null;
  /** Commands run one at a time, in order. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly netns?: string) {}

  /** Runs one command (a script is made one line first); never throws for nft's own errors. */
  run(command: string, timeoutMs = 2000): Promise<NftAnswer> {
    const next = this.queue.then(() => this.runNow(nftOneLine(command), timeoutMs));
    this.queue = next.catch(() => {});
    return next;
  }

  /** Ends the shell (the next command starts a new one). */
  close(): void {
    const p = this.proc;
    const w = this.waiting;
    this.proc = null;
    this.waiting = null;
    w?.(null);
    this.buffer = '';
    if (p && p.exitCode === null) p.kill('SIGKILL');
  }

  private shell(): ChildProcessWithoutNullStreams {
    if (this.proc && this.proc.exitCode === null && !this.proc.killed) return this.proc;
    const [cmd, ...args] = inNetns(this.netns, ['sh', '-c', 'exec nft -i 2>&1']);
    const p = spawn(cmd as string, args, { stdio: 'pipe' });
    p.stdout.setEncoding('utf8');
    p.stdout.on('data', (d: string) => {
      this.buffer += d;
      const m = MARKER_LINE.exec(this.buffer);
      if (!m || !this.waiting) return;
      const text = this.buffer.slice(0, m.index);
      this.buffer = this.buffer.slice(m.index + m[0].length).replace(/^\n/, '');
      const w = this.waiting;
      this.waiting = null;
      w(text);
    });
    p.stdin.on('error', () => {});
    // An idle shell keeps no process alive (a pending command's timer does); when ours exits,
    // nft reads EOF and exits too.
    p.unref();
    for (const stream of [p.stdin, p.stdout, p.stderr]) (stream as unknown as Socket).unref();
    p.on('error', () => this.close());
    p.on('exit', () => {
      if (this.proc === p) this.close();
    });
    this.proc = p;
    this.buffer = '';
    return p;
  }

  /** `line` is one line (run() made it so with nftOneLine). */
  private runNow(line: string, timeoutMs: number): Promise<NftAnswer> {
    const p = this.shell();
    return new Promise<NftAnswer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = null;
        this.close();
        reject(new Error(`nft did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting = (text) => {
        clearTimeout(timer);
        if (text === null) return reject(new Error(`nft exited: ${this.buffer.trim() || 'no output'}`));
        resolve({ ok: !/^Error:/m.test(text), output: text.trim() });
      };
      p.stdin.write(`${line}\n${MARKER_COMMAND}\n`);
    });
  }
}
