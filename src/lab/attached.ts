// A command with the terminal attached (interactive psql, `lab exec`): util/exec.ts's run()
// captures output through pipes, which an interactive program cannot use. Still bounded in time.
import { spawn } from 'node:child_process';

export function runAttached(
  argv: string[],
  opts: { timeoutMs: number; env?: NodeJS.ProcessEnv },
): Promise<number> {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error('runAttached: empty command');
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: '/tmp', env: opts.env ?? process.env, stdio: 'inherit' });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? (signal ? 128 : 1));
    });
  });
}
