/**
 * The worker's event grammar (DESIGN.md, "Event protocol"): one event per line on stdout,
 * TAB-separated, every field present (empty where none). Unknown trailing fields are
 * ignored so that fields can be added at the end.
 */
import { isReason, type Reason } from './reasons.js';

export type DlOk = { kind: 'DL_OK'; id: string; bytes: number };
export type DlErr = { kind: 'DL_ERR'; id: string; reason: Reason; attempts: number; detail: string };
export type BadImage = { kind: 'BAD_IMAGE'; id: string; reason: Reason; attempts: number; detail: string };
export type UpOk = {
  kind: 'UP_OK';
  id: string;
  uri: string;
  ext: string;
  bytes: number;
  sha256: string;
  /** null when the payload has no pixel dimensions (e.g. a PDF under --profile any) */
  width: number | null;
  height: number | null;
  /** true when an identical object was already at the destination and was not rewritten */
  existed: boolean;
};
export type UpErr = { kind: 'UP_ERR'; id: string; reason: Reason; attempts: number; detail: string };

export type Event = DlOk | DlErr | BadImage | UpOk | UpErr;
export type EventKind = Event['kind'];
export type TerminalEvent = DlErr | BadImage | UpOk | UpErr;
export type FailureEvent = DlErr | BadImage | UpErr;

export const EVENT_KINDS: readonly EventKind[] = ['DL_OK', 'DL_ERR', 'BAD_IMAGE', 'UP_OK', 'UP_ERR'];

export function isTerminal(e: Event): e is TerminalEvent {
  return e.kind !== 'DL_OK';
}

/** Thrown by the parser on a line that is not a well-formed event. */
export class ProtocolError extends Error {
  readonly code = 'PROTOCOL';
  constructor(
    message: string,
    readonly line: string,
  ) {
    super(message);
    this.name = 'ProtocolError';
  }
}

const UNSAFE = /[\t\n\r]/;

/** Makes a free-text detail safe for one field: no TAB/CR/LF, bounded length. */
export function oneLine(text: string, max = 500): string {
  const flat = text.replace(/[\t\r\n]+/g, ' ').trim();
  return flat.length > max ? flat.slice(0, max - 1) + '…' : flat;
}

function field(name: string, value: string): string {
  if (UNSAFE.test(value)) throw new ProtocolError(`${name} contains TAB, CR or LF`, value);
  return value;
}

/** Encodes one event as a line, newline included. Throws on a field that would break framing. */
export function encodeEvent(e: Event): string {
  const id = field('id', e.id);
  switch (e.kind) {
    case 'DL_OK':
      return `DL_OK\t${id}\t${e.bytes}\n`;
    case 'DL_ERR':
    case 'BAD_IMAGE':
    case 'UP_ERR':
      return `${e.kind}\t${id}\t${e.reason}\t${e.attempts}\t${field('detail', e.detail)}\n`;
    case 'UP_OK':
      return (
        `UP_OK\t${id}\t${field('uri', e.uri)}\t${field('ext', e.ext)}\t${e.bytes}\t${field('sha256', e.sha256)}` +
        `\t${e.width ?? ''}\t${e.height ?? ''}\t${e.existed ? 1 : 0}\n`
      );
  }
}

function int(s: string | undefined, name: string, line: string): number {
  if (s === undefined || s === '') throw new ProtocolError(`missing ${name}`, line);
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < 0) throw new ProtocolError(`bad ${name} "${s}"`, line);
  return n;
}

function optInt(s: string | undefined, name: string, line: string): number | null {
  return s === undefined || s === '' ? null : int(s, name, line);
}

function reason(s: string | undefined, line: string): Reason {
  if (s === undefined || !isReason(s)) throw new ProtocolError(`unknown reason "${s ?? ''}"`, line);
  return s;
}

/**
 * Parses one event line (without its newline; a trailing CR is tolerated). Throws
 * ProtocolError on anything malformed: the caller decides whether that is fatal.
 */
export function parseEvent(raw: string): Event {
  const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
  const f = line.split('\t');
  const kind = f[0];
  const id = f[1];
  if (id === undefined || id === '') throw new ProtocolError('missing id', line);
  switch (kind) {
    case 'DL_OK':
      return { kind, id, bytes: int(f[2], 'bytes', line) };
    case 'DL_ERR':
    case 'BAD_IMAGE':
    case 'UP_ERR':
      if (f.length < 5) throw new ProtocolError(`${kind} needs 5 fields`, line);
      return { kind, id, reason: reason(f[2], line), attempts: int(f[3], 'attempts', line), detail: f[4] ?? '' };
    case 'UP_OK': {
      if (f.length < 9) throw new ProtocolError('UP_OK needs 9 fields', line);
      const uri = f[2] ?? '';
      if (uri === '') throw new ProtocolError('missing uri', line);
      const existed = f[8];
      if (existed !== '0' && existed !== '1') throw new ProtocolError(`bad existed "${existed ?? ''}"`, line);
      return {
        kind,
        id,
        uri,
        ext: f[3] ?? '',
        bytes: int(f[4], 'bytes', line),
        sha256: f[5] ?? '',
        width: optInt(f[6], 'width', line),
        height: optInt(f[7], 'height', line),
        existed: existed === '1',
      };
    }
    default:
      throw new ProtocolError(`unknown event "${kind ?? ''}"`, line);
  }
}
