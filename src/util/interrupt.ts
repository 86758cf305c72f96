// Ctrl-C (SIGINT) or SIGTERM during a long command. Killing the process where it stands would
// leave half-made things behind (namespaces, servers, a writer still writing), so the first
// signal asks the work to stop at its next step, waits for it, runs `undo`, and ends with exit
// status 130. A second signal exits at once and says what may be left.
import { UserError } from './errors.js';

export interface InterruptPlan {
  /** What happens after the interrupt, e.g. "remove the half-built lab". */
  next: string;
  /** The one-line outcome, e.g. "the half-built lab was removed". */
  done: string;
  /** Printed when a second signal cuts the clean-up short: how to clean up by hand. */
  leftover: string;
  undo?: () => Promise<unknown>;
}

export async function interruptible<T>(
  plan: InterruptPlan,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (!ac.signal.aborted) {
      process.stderr.write(`\ninterrupted (${sig}): stopping after the current step, then ${plan.next}\n`);
      ac.abort(new UserError(`interrupted (${sig})`, 130));
      return;
    }
    process.stderr.write(`interrupted again: exiting now; ${plan.leftover}\n`);
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    let result: T;
    try {
      result = await work(ac.signal);
    } catch (e) {
      if (!ac.signal.aborted) throw e;
    }
    if (!ac.signal.aborted) return result!;
    await plan.undo?.();
    throw new UserError(`interrupted: ${plan.done}`, 130);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Rejects as soon as `signal` aborts, else settles like `p` (which runs on, unobserved). */
export function unlessAborted<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
