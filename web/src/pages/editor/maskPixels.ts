/**
 * Pixel work on the mask layer's RGBA bytes (`ImageData.data`). The layer is one colour; its
 * alpha is the mask. The server reads the exported mask as white = repaint, black = keep,
 * thresholded at 50 % (uploads.load_mask), so the export does the same threshold here and what
 * the user sees over the image is exactly what is repainted.
 */

export const MASK_COLOUR: readonly [number, number, number] = [230, 0, 115];
const THRESHOLD = 127;

/** Swap painted and unpainted (alpha → 255 − alpha), recolouring every pixel. */
export function invertAlpha(rgba: Uint8ClampedArray): void {
  for (let i = 0; i < rgba.length; i += 4) {
    rgba[i] = MASK_COLOUR[0];
    rgba[i + 1] = MASK_COLOUR[1];
    rgba[i + 2] = MASK_COLOUR[2];
    rgba[i + 3] = 255 - rgba[i + 3]!;
  }
}

/** The upload form of the mask: opaque white where alpha > 50 %, opaque black elsewhere. */
export function toBinaryMask(rgba: Uint8ClampedArray): Uint8ClampedArray<ArrayBuffer> {
  const out = new Uint8ClampedArray(rgba.length);
  for (let i = 0; i < rgba.length; i += 4) {
    const value = rgba[i + 3]! > THRESHOLD ? 255 : 0;
    out[i] = value;
    out[i + 1] = value;
    out[i + 2] = value;
    out[i + 3] = 255;
  }
  return out;
}

/** Fraction of pixels the server will repaint (alpha > 50 %). */
export function coverage(rgba: Uint8ClampedArray): number {
  const pixels = rgba.length / 4;
  if (pixels === 0) return 0;
  let painted = 0;
  for (let i = 3; i < rgba.length; i += 4) if (rgba[i]! > THRESHOLD) painted += 1;
  return painted / pixels;
}

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** `rect` clipped to a `width`×`height` image with whole-pixel edges, or null if nothing is left. */
export function clipRect(rect: Rect, width: number, height: number): Rect | null {
  const left = Math.max(0, Math.round(rect.x));
  const top = Math.max(0, Math.round(rect.y));
  const right = Math.min(width, Math.round(rect.x + rect.width));
  const bottom = Math.min(height, Math.round(rect.y + rect.height));
  if (right <= left || bottom <= top) return null;
  return { x: left, y: top, width: right - left, height: bottom - top };
}
