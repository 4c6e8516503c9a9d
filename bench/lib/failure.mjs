// Whether a measured run of a transfer scenario failed, and why. A tool that cannot start,
// exits non-zero, is killed (by a signal or the bench's timeout), or leaves objects or bytes
// missing did not do the work asked of it: its figures measure something else, so the report
// leaves them out of its medians and says so (report.mjs). Read from what the run recorded,
// so results saved by earlier versions of the bench are judged alike.

/** Why the run failed, one line, or undefined for a good run. */
export function runFailure(r) {
  const why = [];
  if (r.startError) why.push(`could not start (${r.startError})`);
  else if (r.timedOut) why.push('timed out');
  else if (r.signal) why.push(`killed by ${r.signal}`);
  else if (r.code !== 0) why.push(r.code === null || r.code === undefined ? 'killed' : `exit ${r.code}`);
  if (r.landed !== r.expected) why.push(`${r.landed} of ${r.expected} objects landed`);
  else if (r.landedBytes !== r.expectedBytes) why.push(`${r.landedBytes} of ${r.expectedBytes} bytes landed`);
  return why.length ? why.join(', ') : undefined;
}
