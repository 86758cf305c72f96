/** An error meant for the user: printed as one line, with what to do, and exit status 1. */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}
