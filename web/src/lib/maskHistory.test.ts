// @vitest-environment node
// Pure logic: no DOM needed (and Node's Blob has arrayBuffer(), which jsdom's lacks).
import { describe, expect, it } from 'vitest';
import {
  MASK_HISTORY_STEPS,
  MaskHistory,
  decodeAlpha,
  emptyAlpha,
  encodeAlpha,
  sameAlpha,
  snapshotBytes,
} from './maskHistory';

describe('MaskHistory', () => {
  it('undoes and redoes in order', () => {
    const history = new MaskHistory('a');
    history.commit('b');
    history.commit('c');
    expect(history.current).toBe('c');
    expect(history.undo()).toBe('b');
    expect(history.undo()).toBe('a');
    expect(history.undo()).toBeNull();
    expect(history.current).toBe('a');
    expect(history.redo()).toBe('b');
    expect(history.redo()).toBe('c');
    expect(history.redo()).toBeNull();
    expect(history.current).toBe('c');
  });

  it('keeps exactly 10 undo steps by default', () => {
    expect(MASK_HISTORY_STEPS).toBe(10);
    const history = new MaskHistory(0);
    for (let i = 1; i <= 15; i += 1) history.commit(i);
    expect(history.undoDepth).toBe(10);
    const seen: number[] = [];
    let state: number | null;
    while ((state = history.undo()) !== null) seen.push(state);
    // From 15, ten steps back reach 5; the states before that were dropped.
    expect(seen).toEqual([14, 13, 12, 11, 10, 9, 8, 7, 6, 5]);
    expect(history.canUndo).toBe(false);
    expect(history.redoDepth).toBe(10);
    for (let i = 0; i < 10; i += 1) history.redo();
    expect(history.current).toBe(15);
    expect(history.canRedo).toBe(false);
  });

  it('drops the redo branch on a new edit', () => {
    const history = new MaskHistory('a');
    history.commit('b');
    history.undo();
    expect(history.canRedo).toBe(true);
    history.commit('c');
    expect(history.canRedo).toBe(false);
    expect(history.redo()).toBeNull();
    expect(history.undo()).toBe('a');
  });

  it('still holds 10 steps after undoing and committing past the limit', () => {
    const history = new MaskHistory(0, 10);
    for (let i = 1; i <= 10; i += 1) history.commit(i);
    history.undo();
    history.undo(); // at 8, redo holds 9 and 10
    for (let i = 100; i < 105; i += 1) history.commit(i);
    expect(history.canRedo).toBe(false);
    expect(history.undoDepth).toBe(10);
    const seen: number[] = [];
    let state: number | null;
    while ((state = history.undo()) !== null) seen.push(state);
    expect(seen).toEqual([103, 102, 101, 100, 8, 7, 6, 5, 4, 3]);
  });

  it('reset forgets everything', () => {
    const history = new MaskHistory('a');
    history.commit('b');
    history.undo();
    history.reset('z');
    expect(history.current).toBe('z');
    expect(history.canUndo).toBe(false);
    expect(history.canRedo).toBe(false);
  });

  it('refuses a limit below one', () => {
    expect(() => new MaskHistory(0, 0)).toThrow(RangeError);
    expect(() => new MaskHistory(0, 2.5)).toThrow(RangeError);
  });
});

function rgbaWithAlpha(alpha: number[]): Uint8ClampedArray {
  const data = new Uint8ClampedArray(alpha.length * 4);
  alpha.forEach((value, i) => {
    data[i * 4] = 7; // colour bytes are not part of a snapshot
    data[i * 4 + 3] = value;
  });
  return data;
}

describe('alpha snapshots', () => {
  it('round-trips the alpha channel exactly', () => {
    const alpha = [0, 0, 0, 255, 255, 128, 0, 255, 255, 255, 3, 3];
    const snapshot = encodeAlpha(rgbaWithAlpha(alpha), 4, 3);
    expect(Array.from(snapshot.values)).toEqual([0, 255, 128, 0, 255, 3]);
    expect(Array.from(snapshot.lengths)).toEqual([3, 2, 1, 1, 3, 2]);
    const decoded = decodeAlpha(snapshot, [255, 0, 0]);
    expect(decoded.length).toBe(48);
    for (let i = 0; i < alpha.length; i += 1) {
      expect(Array.from(decoded.subarray(i * 4, i * 4 + 4))).toEqual([255, 0, 0, alpha[i]]);
    }
  });

  it('stores a large mostly-uniform mask in a few bytes', () => {
    const width = 2048;
    const height = 2048;
    const data = new Uint8ClampedArray(width * height * 4);
    // A filled 512x512 square in the middle.
    for (let y = 768; y < 1280; y += 1) {
      for (let x = 768; x < 1280; x += 1) data[(y * width + x) * 4 + 3] = 255;
    }
    const snapshot = encodeAlpha(data, width, height);
    expect(snapshot.values.length).toBe(2 * 512 + 1);
    expect(snapshotBytes(snapshot)).toBeLessThan(6000);
    const decoded = decodeAlpha(snapshot, [0, 0, 0]);
    expect(decoded[(1000 * width + 1000) * 4 + 3]).toBe(255);
    expect(decoded[(100 * width + 100) * 4 + 3]).toBe(0);
  });

  it('compares snapshots and builds an empty one', () => {
    const a = encodeAlpha(rgbaWithAlpha([0, 0, 0, 0]), 2, 2);
    expect(sameAlpha(a, emptyAlpha(2, 2))).toBe(true);
    const b = encodeAlpha(rgbaWithAlpha([0, 0, 255, 0]), 2, 2);
    expect(sameAlpha(a, b)).toBe(false);
    expect(sameAlpha(a, emptyAlpha(4, 1))).toBe(false);
  });

  it('refuses buffers of the wrong size', () => {
    expect(() => encodeAlpha(new Uint8ClampedArray(12), 2, 2)).toThrow(RangeError);
    const snapshot = emptyAlpha(2, 2);
    expect(() => decodeAlpha(snapshot, [0, 0, 0], new Uint8ClampedArray(4))).toThrow(RangeError);
    const broken = { ...snapshot, lengths: Uint32Array.of(3) };
    expect(() => decodeAlpha(broken, [0, 0, 0])).toThrow(RangeError);
  });
});
