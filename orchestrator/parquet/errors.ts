/**
 * A manifest ferry cannot use: unreadable, not Parquet, a missing or unusable key column,
 * a clash with an output column, a value that cannot be written. The unit fails with this
 * one-line message (it names the file, and the flag when one is involved); other units go on.
 */
export class ManifestError extends Error {
  readonly code = 'MANIFEST';
  constructor(
    message: string,
    readonly file: string,
  ) {
    super(message);
    this.name = 'ManifestError';
  }
}

/** An error or any thrown value as one line: user errors print one line, no stack. */
export function oneLine(e: unknown): string {
  const text = e instanceof Error ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}` : String(e);
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
