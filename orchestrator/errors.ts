/**
 * The error taxonomy of the command line (after changesets): user errors carry an exit
 * code and print one clear line; anything else is a bug and prints its stack.
 */
export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, INTERNAL: 70, SIGINT: 130, SIGTERM: 143 } as const;

/** Bad flags, missing or empty manifest prefix, unknown --only unit: exit 2. */
export class UsageError extends Error {
  readonly exitCode = EXIT.USAGE;
}

/** One unit could not complete (unreadable manifest, missing column, unwritable --out). */
export class UnitError extends Error {
  readonly exitCode = EXIT.FAILED;
  constructor(
    readonly unit: string,
    message: string,
  ) {
    super(message);
  }
}

/** A place the whole command needs cannot be used (an unwritable --out): nothing can complete. */
export class PlaceError extends Error {
  readonly exitCode = EXIT.FAILED;
}
