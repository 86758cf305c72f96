// PostgreSQL WAL positions ('X/Y', two hex halves, as PostgreSQL prints them). Pure.

/** The LSN as a number that orders correctly; null when it is not an LSN. */
export function parseLsn(lsn: string): bigint | null {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn);
  return m ? (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`) : null;
}

/** `lsn` >= `target`; false when either is unknown. */
export function lsnAtLeast(lsn: string | null, target: string | null): boolean {
  const a = lsn === null ? null : parseLsn(lsn);
  const b = target === null ? null : parseLsn(target);
  return a !== null && b !== null && a >= b;
}
