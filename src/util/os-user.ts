// An OS user's uid and gid, from /etc/passwd (members run as the postgres user).
import { readFileSync } from 'node:fs';
import { UserError } from './errors.js';

export function osUserIds(name: string): { uid: number; gid: number } {
  let line: string | undefined;
  try {
    line = readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`${name}:`));
  } catch {}
  const f = line?.split(':');
  if (f?.[2] && f[3]) return { uid: Number(f[2]), gid: Number(f[3]) };
  throw new UserError(
    `there is no "${name}" OS user${name === 'postgres' ? ': install PostgreSQL with `apt-get install -y postgresql-15`' : ''}`,
  );
}
