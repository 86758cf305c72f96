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
