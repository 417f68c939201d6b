// @vitest-environment node
import { describe, expect, it } from 'vitest';
import { MASK_COLOUR, clipRect, coverage, invertAlpha, toBinaryMask } from './maskPixels';
import { MAX_SCALE, ensureVisible, fitView, minScale, panBy, pinch, toContent, toScreen, wheelFactor, zoomAt } from './viewport';

describe('viewport', () => {
  const viewport = { width: 800, height: 600 };

  it('fits and centres the content', () => {
    const view = fitView({ width: 1024, height: 512 }, viewport, 0);
    expect(view.scale).toBeCloseTo(800 / 1024);
    expect(view.x).toBeCloseTo(0);
    expect(view.y).toBeCloseTo((600 - 512 * view.scale) / 2);
    // A tiny image is not blown up beyond the maximum zoom.
    expect(fitView({ width: 10, height: 10 }, viewport).scale).toBe(MAX_SCALE);
  });

  it('zooms around the anchor point', () => {
    const view = { scale: 1, x: 100, y: 50 };
    const anchor = { x: 300, y: 250 };
    const under = toContent(view, anchor);
    const zoomed = zoomAt(view, 2, anchor, { min: 0.1 });
    expect(zoomed.scale).toBe(2);
    const after = toScreen(zoomed, under);
    expect(after.x).toBeCloseTo(anchor.x);
    expect(after.y).toBeCloseTo(anchor.y);
  });

  it('clamps the zoom', () => {
    const view = { scale: 1, x: 0, y: 0 };
    expect(zoomAt(view, 100, { x: 0, y: 0 }, { min: 0.5 }).scale).toBe(MAX_SCALE);
    expect(zoomAt(view, 0.01, { x: 0, y: 0 }, { min: 0.5 }).scale).toBe(0.5);
    expect(minScale({ width: 800, height: 600 }, { width: 832, height: 632 })).toBeCloseTo(0.25);
  });

  it('maps screen to content and back', () => {
    const view = panBy({ scale: 0.5, x: 10, y: 20 }, 5, -5);
    const point = { x: 400, y: 300 };
    const back = toScreen(view, toContent(view, point));
    expect(back.x).toBeCloseTo(400);
    expect(back.y).toBeCloseTo(300);
  });

  it('pans just enough to show a point', () => {
    const view = { scale: 1, x: 0, y: 0 };
    expect(ensureVisible(view, { x: 100, y: 100 }, viewport)).toBe(view);
    const moved = ensureVisible(view, { x: 1000, y: -50 }, viewport, 24);
    expect(toScreen(moved, { x: 1000, y: -50 })).toEqual({ x: 776, y: 24 });
  });

  it('turns wheel notches into zoom steps', () => {
    expect(wheelFactor(-100, 0)).toBeCloseTo(1.25);
    expect(wheelFactor(100, 0)).toBeCloseTo(0.8);
    expect(wheelFactor(-3, 1)).toBeCloseTo(1.25 ** 0.99);
  });

  it('pinches: spread fingers zoom in, moved fingers pan', () => {
    const view = { scale: 1, x: 0, y: 0 };
    const zoomed = pinch(view, [{ x: 100, y: 100 }, { x: 200, y: 100 }], [{ x: 50, y: 100 }, { x: 250, y: 100 }], { min: 0.1 });
    expect(zoomed.scale).toBeCloseTo(2);
    expect(toScreen(zoomed, { x: 150, y: 100 }).x).toBeCloseTo(150);
    const panned = pinch(view, [{ x: 0, y: 0 }, { x: 10, y: 0 }], [{ x: 30, y: 40 }, { x: 40, y: 40 }], { min: 0.1 });
    expect(panned).toEqual({ scale: 1, x: 30, y: 40 });
  });
});

function layer(alpha: number[]): Uint8ClampedArray {
  const data = new Uint8ClampedArray(alpha.length * 4);
  alpha.forEach((value, i) => (data[i * 4 + 3] = value));
  return data;
}

describe('mask pixels', () => {
  it('inverts the alpha and recolours', () => {
    const data = layer([0, 255, 100]);
    invertAlpha(data);
    expect(Array.from(data.subarray(0, 4))).toEqual([...MASK_COLOUR, 255]);
    expect(data[7]).toBe(0);
    expect(data[11]).toBe(155);
  });

  it('exports white where the server will repaint, black elsewhere', () => {
    const out = toBinaryMask(layer([0, 127, 128, 255]));
    expect(Array.from(out)).toEqual([0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255, 255]);
  });

  it('measures coverage with the same threshold', () => {
    expect(coverage(layer([0, 127, 128, 255]))).toBe(0.5);
    expect(coverage(new Uint8ClampedArray(0))).toBe(0);
  });

  it('clips rectangles to the image', () => {
    expect(clipRect({ x: -10, y: 5, width: 30, height: 500 }, 100, 80)).toEqual({ x: 0, y: 5, width: 20, height: 75 });
    expect(clipRect({ x: 120, y: 0, width: 10, height: 10 }, 100, 80)).toBeNull();
  });
});
