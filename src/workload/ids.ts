// Writer ids: one bigint per transaction, never reused between sessions or runs.
//   id = run << 39 | session << 31 | seq
// run: 1 .. 2^24-1, drawn at random and registered in writer_runs (a collision is retried);
// session: 0 .. 255; seq: 1 .. 2^31-1, one sequence per session. The seed rows (ids 1..5) and
// anything below 2^39 never collide with a writer id. Ids exceed 2^53, so they are BigInts in
// code and decimal strings in the ledger (JSON numbers would lose precision).

export const RUN_BITS = 24n;
export const SESSION_BITS = 8n;
export const SEQ_BITS = 31n;
export const MAX_RUN = (1 << Number(RUN_BITS)) - 1;
export const MAX_SESSIONS = 1 << Number(SESSION_BITS);
export const MAX_SEQ = 2 ** Number(SEQ_BITS) - 1;
const RUN_SHIFT = SESSION_BITS + SEQ_BITS;

export function encodeId(run: number, session: number, seq: number): string {
  if (!Number.isInteger(run) || run < 1 || run > MAX_RUN) throw new RangeError(`run ${run} out of range`);
  if (!Number.isInteger(session) || session < 0 || session >= MAX_SESSIONS)
    throw new RangeError(`session ${session} out of range`);
  if (!Number.isInteger(seq) || seq < 1 || seq > MAX_SEQ) throw new RangeError(`seq ${seq} out of range`);
  return ((BigInt(run) << RUN_SHIFT) | (BigInt(session) << SEQ_BITS) | BigInt(seq)).toString();
}

export function decodeId(id: string): { run: number; session: number; seq: number } {
  if (!/^[0-9]{1,19}$/.test(id)) throw new RangeError(`not a writer id: ${id}`);
  const v = BigInt(id);
  return {
    run: Number(v >> RUN_SHIFT),
    session: Number((v >> SEQ_BITS) & ((1n << SESSION_BITS) - 1n)),
    seq: Number(v & ((1n << SEQ_BITS) - 1n)),
  };
}

/** [lo, hi) of every id a run can produce, as decimal strings (for a range scan). */
export function runIdRange(run: number): { lo: string; hi: string } {
  return { lo: (BigInt(run) << RUN_SHIFT).toString(), hi: (BigInt(run + 1) << RUN_SHIFT).toString() };
}
