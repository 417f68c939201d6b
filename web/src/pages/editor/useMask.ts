import { useCallback, useRef, useState } from 'react';
import { MaskHistory, decodeAlpha, emptyAlpha, encodeAlpha, sameAlpha, type AlphaSnapshot } from '../../lib/maskHistory';
import { MASK_COLOUR, clipRect, coverage, invertAlpha, toBinaryMask, type Rect } from './maskPixels';

export type Tool = 'brush' | 'eraser' | 'pan';
export const MASK_FILL = `rgb(${MASK_COLOUR.join(' ')})`;

/**
 * The mask layer: a canvas the size of the image (so the exported mask matches it pixel for pixel)
 * plus its undo history. Strokes draw straight onto the canvas; every finished edit is committed
 * as one history step.
 */
export function useMask() {
  const canvasRef = useRef<HTMLCanvasElement | null>(null);
  const history = useRef<MaskHistory<AlphaSnapshot> | null>(null);
  // Re-render when the history or coverage changes (buttons' disabled state, the coverage note).
  const [status, setStatus] = useState({ canUndo: false, canRedo: false, coverage: 0 });

  const context = useCallback(() => canvasRef.current?.getContext('2d', { willReadFrequently: true }) ?? null, []);

  const pixels = useCallback((): ImageData | null => {
    const canvas = canvasRef.current;
    const ctx = context();
    return canvas && ctx ? ctx.getImageData(0, 0, canvas.width, canvas.height) : null;
  }, [context]);

  const refresh = useCallback((data: ImageData | null) => {
    const h = history.current;
    setStatus({ canUndo: h?.canUndo ?? false, canRedo: h?.canRedo ?? false, coverage: data ? coverage(data.data) : 0 });
  }, []);

  /** Start a blank mask for an image of this size. */
  const reset = useCallback(
    (width: number, height: number) => {
      const canvas = canvasRef.current;
      if (canvas) {
        canvas.width = width;
        canvas.height = height;
      }
      history.current = new MaskHistory(emptyAlpha(width, height));
      refresh(null);
    },
    [refresh],
  );

  /** Record the canvas as it is now as one undo step (no step when nothing changed). */
  const commit = useCallback(() => {
    const data = pixels();
    const h = history.current;
    if (!data || !h) return;
    const snapshot = encodeAlpha(data.data, data.width, data.height);
    if (!sameAlpha(snapshot, h.current)) h.commit(snapshot);
    refresh(data);
  }, [pixels, refresh]);

  const show = useCallback(
    (snapshot: AlphaSnapshot | null) => {
      const ctx = context();
      if (!snapshot || !ctx) return;
      const image = new ImageData(decodeAlpha(snapshot, MASK_COLOUR), snapshot.width, snapshot.height);
      ctx.putImageData(image, 0, 0);
      refresh(image);
    },
    [context, refresh],
  );

  /** Put the canvas back to the last committed state (a stroke abandoned for a pinch). */
  const revert = useCallback(() => show(history.current?.current ?? null), [show]);
  const undo = useCallback(() => show(history.current?.undo() ?? null), [show]);
  const redo = useCallback(() => show(history.current?.redo() ?? null), [show]);

  const clear = useCallback(() => {
    const canvas = canvasRef.current;
    const ctx = context();
    if (!canvas || !ctx) return;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    commit();
  }, [commit, context]);

  const invert = useCallback(() => {
    const ctx = context();
    const data = pixels();
    if (!ctx || !data) return;
    invertAlpha(data.data);
    ctx.putImageData(data, 0, 0);
    commit();
  }, [commit, context, pixels]);

  /** Paint (or erase) a rectangle given in image pixels; false when it lies outside the image. */
  const fillRect = useCallback(
    (rect: Rect, erase: boolean): boolean => {
      const canvas = canvasRef.current;
      const ctx = context();
      if (!canvas || !ctx) return false;
      const clipped = clipRect(rect, canvas.width, canvas.height);
      if (!clipped) return false;
      if (erase) ctx.clearRect(clipped.x, clipped.y, clipped.width, clipped.height);
      else {
        ctx.globalCompositeOperation = 'source-over';
        ctx.fillStyle = MASK_FILL;
        ctx.fillRect(clipped.x, clipped.y, clipped.width, clipped.height);
      }
      commit();
      return true;
    },
    [commit, context],
  );

  /** The mask as the server wants it: a PNG, white = repaint, black = keep, the image's size. */
  const exportPng = useCallback(async (): Promise<Blob> => {
    const data = pixels();
    if (!data) throw new Error('the mask is not ready');
    const out = document.createElement('canvas');
    out.width = data.width;
    out.height = data.height;
    const ctx = out.getContext('2d');
    if (!ctx) throw new Error('this browser cannot draw on a canvas');
    ctx.putImageData(new ImageData(toBinaryMask(data.data), data.width, data.height), 0, 0);
    return new Promise((resolve, reject) =>
      out.toBlob((blob) => (blob ? resolve(blob) : reject(new Error('could not encode the mask'))), 'image/png'),
    );
  }, [pixels]);

  return { canvasRef, context, status, reset, commit, revert, undo, redo, clear, invert, fillRect, exportPng };
}

export type MaskApi = ReturnType<typeof useMask>;
