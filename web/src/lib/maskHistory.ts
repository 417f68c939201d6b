/**
 * Undo/redo for the mask editor (issue 6: 10 steps, Ctrl+Z / Ctrl+Shift+Z).
 *
 * `MaskHistory` is a plain bounded undo stack over immutable snapshots. Masks are stored as
 * run-length-encoded alpha (`encodeAlpha`): a mask is mostly long runs of 'nothing' and 'all',
 * so eleven snapshots of a 16-megapixel mask cost kilobytes, not the 176 MB raw copies would.
 */

export const MASK_HISTORY_STEPS = 10;

export class MaskHistory<T> {
  private past: T[] = [];
  private future: T[] = [];
  private present: T;
  readonly limit: number;

  constructor(initial: T, limit: number = MASK_HISTORY_STEPS) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError('limit must be a positive integer');
    this.present = initial;
    this.limit = limit;
  }

  get current(): T {
    return this.present;
  }

  get canUndo(): boolean {
    return this.past.length > 0;
  }

  get canRedo(): boolean {
    return this.future.length > 0;
  }

  /** How many undo steps are available (at most `limit`). */
  get undoDepth(): number {
    return this.past.length;
  }

  get redoDepth(): number {
    return this.future.length;
  }

  /** Record a new state after an edit: the old one becomes undoable, the redo branch is dropped. */
  commit(next: T): void {
    this.past.push(this.present);
    if (this.past.length > this.limit) this.past.shift();
    this.present = next;
    this.future = [];
  }

  /** Step back; returns the state to show, or null when there is nothing to undo. */
  undo(): T | null {
    const previous = this.past.pop();
    if (previous === undefined) return null;
    this.future.push(this.present);
    this.present = previous;
    return previous;
  }

  redo(): T | null {
    const next = this.future.pop();
    if (next === undefined) return null;
    this.past.push(this.present);
    this.present = next;
    return next;
  }

  /** Start over from `initial` (a new image): nothing to undo or redo. */
  reset(initial: T): void {
    this.past = [];
    this.future = [];
    this.present = initial;
  }
}

/** A mask's alpha channel as runs: `values[i]` repeated `lengths[i]` times, row-major. */
export interface AlphaSnapshot {
  readonly width: number;
  readonly height: number;
  readonly values: Uint8Array;
  readonly lengths: Uint32Array;
}

/** Run-length encode the alpha bytes of RGBA pixels (`ImageData.data`). */
export function encodeAlpha(rgba: Uint8ClampedArray | Uint8Array, width: number, height: number): AlphaSnapshot {
  const pixels = width * height;
  if (rgba.length !== pixels * 4) {
    throw new RangeError(`expected ${pixels * 4} bytes for ${width}x${height} RGBA, got ${rgba.length}`);
  }
  const values: number[] = [];
  const lengths: number[] = [];
  let index = 3;
  while (index < rgba.length) {
    const value = rgba[index]!; // index < length: the loop condition
    let run = 1;
    index += 4;
    while (index < rgba.length && rgba[index] === value) {
      run += 1;
      index += 4;
    }
    values.push(value);
    lengths.push(run);
  }
  return { width, height, values: Uint8Array.from(values), lengths: Uint32Array.from(lengths) };
}

/** RGBA pixels of `snapshot`: every pixel `colour` with the stored alpha (fills `into` if given). */
export function decodeAlpha(
  snapshot: AlphaSnapshot,
  colour: readonly [number, number, number],
  into?: Uint8ClampedArray<ArrayBuffer>,
): Uint8ClampedArray<ArrayBuffer> {
  const size = snapshot.width * snapshot.height * 4;
  const out = into ?? new Uint8ClampedArray(size);
  if (out.length !== size) throw new RangeError(`expected a ${size}-byte buffer, got ${out.length}`);
  let offset = 0;
  for (let run = 0; run < snapshot.values.length; run += 1) {
    const alpha = snapshot.values[run]!; // values and lengths have one entry per run
    const end = offset + snapshot.lengths[run]! * 4;
    for (; offset < end; offset += 4) {
      out[offset] = colour[0];
      out[offset + 1] = colour[1];
      out[offset + 2] = colour[2];
      out[offset + 3] = alpha;
    }
  }
  if (offset !== size) throw new RangeError("the snapshot's runs do not cover the image");
  return out;
}

/** Whether two snapshots hold the same mask (used to skip no-op history entries). */
export function sameAlpha(a: AlphaSnapshot, b: AlphaSnapshot): boolean {
  if (a.width !== b.width || a.height !== b.height || a.values.length !== b.values.length) return false;
  for (let i = 0; i < a.values.length; i += 1) {
    if (a.values[i] !== b.values[i] || a.lengths[i] !== b.lengths[i]) return false;
  }
  return true;
}

/** An empty (fully transparent) snapshot. */
export function emptyAlpha(width: number, height: number): AlphaSnapshot {
  return { width, height, values: Uint8Array.of(0), lengths: Uint32Array.of(width * height) };
}

/** Size of a snapshot in bytes, for the record. */
export function snapshotBytes(snapshot: AlphaSnapshot): number {
  return snapshot.values.byteLength + snapshot.lengths.byteLength;
}
