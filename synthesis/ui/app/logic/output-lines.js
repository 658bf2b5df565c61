// A step's output as numbered lines, built incrementally as chunks arrive (never by
// splitting everything again), for the virtualized view and the search.
// Pure: no browser globals.

/** Kinds of line: ordinary output, or the server's truncation marker (shown as text). */
export const MARKER = 'marker';

/**
 * Append-only lines of stdout and stderr as they interleave. Each stream has its own
 * unfinished ("open") line: a chunk of stdout without a newline, then a chunk of stderr,
 * then the rest of the stdout line, gives the stdout line whole and the stderr line apart.
 * Line numbers never change once given.
 */
export class LineIndex {
  constructor() {
    /** @type {string[]} */
    this.texts = [];
    /** @type {string[]} 'stdout' | 'stderr' | MARKER */
    this.kinds = [];
    /** @type {Record<string, number>} the open line of each stream, or -1 */
    this.open = {};
    /** The longest line so far, in characters (the view's scroll width). */
    this.maxLength = 0;
    /** Characters received. */
    this.size = 0;
    /** Bumped by every change, so views know to redraw. */
    this.version = 0;
  }

  get length() {
    return this.texts.length;
  }

  /**
   * Adds a chunk of one stream.
   * @param {string} text
   * @param {string} [stream] 'stdout' (default) or 'stderr'
   * @param {{truncated?: boolean}} [options] the chunk is the server's truncation marker
   */
  append(text, stream = 'stdout', { truncated = false } = {}) {
    if (typeof text !== 'string' || text === '') return;
    this.size += text.length;
    this.version += 1;
    if (truncated) {
      // The marker is a line of its own: the stream's open line ends before it.
      this.open[stream] = -1;
      for (const line of text.split('\n')) if (line.trim()) this._push(line, MARKER);
      return;
    }
    const parts = text.split('\n');
    for (let k = 0; k < parts.length; k += 1) {
      const part = parts[k];
      const last = k === parts.length - 1;
      if (last && part === '') {
        this.open[stream] = -1; // the chunk ended with a newline
        break;
      }
      let index;
      const open = this.open[stream] ?? -1;
      if (k === 0 && open >= 0) {
        this.texts[open] += part;
        this._measure(this.texts[open]);
        index = open;
      } else {
        index = this._push(part, stream);
      }
      this.open[stream] = last ? index : -1;
    }
  }

  /** Whether line `i` may still grow (its stream has not ended it yet). */
  isOpen(i) {
    return Object.values(this.open).includes(i);
  }

  /** The line numbers (0-based) that may still grow. */
  openLines() {
    return Object.values(this.open).filter((i) => i >= 0);
  }

  _push(text, kind) {
    this.texts.push(text);
    this.kinds.push(kind);
    this._measure(text);
    return this.texts.length - 1;
  }

  _measure(text) {
    if (text.length > this.maxLength) this.maxLength = text.length;
  }

  /**
   * Lines from stored text (the snapshot's output and error, when no live chunks exist).
   * @param {unknown} output stdout, or any value (shown as text)
   * @param {unknown} [error] stderr or the step's error
   */
  static fromStored(output, error) {
    const index = new LineIndex();
    const text = storedText(output);
    if (text) index.append(text, 'stdout');
    if (typeof error === 'string' && error) {
      index.open.stdout = -1;
      index.append(error, 'stderr');
    }
    return index;
  }
}

/**
 * A stored output as text: strings as they are, except JSON objects and lists (a loop's
 * or a child plan's output), which are indented to be read.
 */
export function storedText(output) {
  if (output === null || output === undefined) return '';
  if (typeof output === 'string') {
    const first = output.trimStart()[0];
    if (first === '{' || first === '[') {
      try {
        return JSON.stringify(JSON.parse(output), null, 2);
      } catch {
        return output;
      }
    }
    return output;
  }
  try {
    return JSON.stringify(output, null, 2);
  } catch {
    return String(output);
  }
}

/**
 * A line as a terminal would leave it: a carriage return (progress bars) starts the line
 * over, so only what follows the last one shows; a Windows line ending is dropped.
 */
export function displayText(text) {
  let line = text.endsWith('\r') ? text.slice(0, -1) : text;
  const cr = line.lastIndexOf('\r');
  if (cr >= 0) line = line.slice(cr + 1);
  return line;
}
