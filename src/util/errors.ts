/** An error meant for the user: printed as one line, with what to do, and exit status 1
 *  (or the given one, e.g. 130 after an interrupt). */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'UserError';
  }
}

/** Mode bits that let anyone but the owner read a file holding secrets. */
export const READABLE_BY_OTHERS = 0o077;

/** The fix for a file holding secrets that others can read, in one line. */
export function looseModeError(file: string, mode: number, what: string): UserError {
  const octal = (mode & 0o777).toString(8).padStart(3, '0');
  return new UserError(
    `${file} ${what} and is readable by group or other users (mode ${octal}): run \`chmod 600 ${file}\``,
  );
}
