// The one wrapper around child processes: argument arrays only (no shell), a timeout on every
// call, cwd /tmp (PostgreSQL's binaries run as postgres and cannot read /root).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface RunOptions {
  timeoutMs?: number;
  input?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Do not throw on a non-zero exit status; the caller inspects `code`. */
  allowFailure?: boolean;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  constructor(
    readonly argv: string[],
    readonly result: RunResult,
  ) {
    const tail = (result.stderr || result.stdout).trim().split('\n').slice(-3).join(' | ');
    super(`${argv.join(' ')} exited with ${result.code}: ${tail}`);
  }
}

export function run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error('run: empty command');
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd ?? '/tmp',
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
      // A grandchild may still hold the pipes open: stop waiting for them.
      setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
      }, 1000).unref();
    }, timeoutMs);
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ENOENT') reject(new Error(`${cmd}: command not found (is its package installed?)`));
      else reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result: RunResult = { code: code ?? (signal ? 128 : 1), stdout, stderr };
      if (timedOut) {
        result.stderr += `\n(killed after ${timeoutMs} ms timeout)`;
        result.code = 124;
      }
      if (result.code !== 0 && !opts.allowFailure) reject(new CommandError(argv, result));
      else resolve(result);
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** argv prefix that runs a command inside a network namespace (none: this host). */
export function inNetns(netns: string | undefined, argv: string[]): string[] {
  return netns ? ['ip', 'netns', 'exec', netns, ...argv] : argv;
}

/** This process's ambient capabilities (/proc/self/status CapAmb), 0n when it has none. */
export function ambientCaps(): bigint {
  try {
    const m = /^CapAmb:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m?.[1] ? BigInt(`0x${m[1]}`) : 0n;
  } catch {
    return 0n;
  }
}

/**
 * argv prefix that runs a command as an unprivileged OS user (PostgreSQL refuses root). As root:
 * runuser. Already that user (the agent's unprivileged mode): the command as is, but without the
 * ambient capability the agent holds for its fence, so PostgreSQL never gets CAP_NET_ADMIN.
 */
export function asUser(user: string | undefined, argv: string[]): string[] {
  if (!user) return argv;
  if (process.getuid?.() === 0) return ['runuser', '-u', user, '--', ...argv];
  if (ambientCaps() !== 0n) return ['setpriv', '--inh-caps=-all', '--ambient-caps=-all', '--', ...argv];
  return argv;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * A command with the terminal attached (interactive psql, `lab exec`): run() captures output
 * through pipes, which an interactive program cannot use. Still bounded in time; returns the exit
 * status (128 when killed by a signal).
 */
export function runAttached(
  argv: string[],
  opts: { timeoutMs: number; env?: NodeJS.ProcessEnv },
): Promise<number> {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error('runAttached: empty command');
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: '/tmp', env: opts.env ?? process.env, stdio: 'inherit' });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (e.code === 'ENOENT') reject(new Error(`${cmd}: command not found (is its package installed?)`));
      else reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? (signal ? 128 : 1));
    });
  });
}
