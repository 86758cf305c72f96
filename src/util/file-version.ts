// Which version of a file a cache holds: a certificate re-issued at the same path (a renewal, a
// new deployment) or whose mode changed is read again, while an unchanged one is not (the probes
// run every round).
import { statSync } from 'node:fs';

export function fileVersion(path: string): string {
  try {
    const st = statSync(path);
    return `${path}@${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  } catch {
    return `${path}@missing`;
  }
}
