// The one poller: every "ask until it holds or time runs out" loop (a server stopped, promoted,
// streaming, reachable; a lab in some state) goes through it.
import { sleep } from './exec.js';

/** What `poll` saw: the first value the probe gave, or none by the deadline and its last error. */
export type Polled<T> = { ok: true; value: T } | { ok: false; lastError: string };

/**
 * Asks `probe` every `everyMs` until it gives a value (anything but undefined) or `timeoutMs` has
 * passed, with a last look at the deadline. A probe that throws counts as no value yet (its
 * message is kept for the caller's error). `guard` runs before every look; what it throws ends the
 * wait at once.
 */
export async function poll<T>(
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  everyMs: number,
  guard?: () => Promise<void> | void,
): Promise<Polled<T>> {
  const end = Date.now() + timeoutMs;
  let lastError = '';
  for (;;) {
    await guard?.();
    try {
      const value = await probe();
      if (value !== undefined) return { ok: true, value };
    } catch (e) {
      lastError = (e as Error).message;
    }
    const left = end - Date.now();
    if (left <= 0) return { ok: false, lastError };
    await sleep(Math.min(everyMs, left));
  }
}

/** `poll` for a yes/no question: true once `check` holds, false if it did not by the deadline. */
export async function pollUntil(
  check: () => Promise<boolean>,
  timeoutMs: number,
  everyMs: number,
): Promise<boolean> {
  return (await poll(async () => ((await check()) ? true : undefined), timeoutMs, everyMs)).ok;
}
