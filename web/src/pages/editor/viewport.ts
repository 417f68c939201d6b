/**
 * Zoom and pan for the editor's canvas, as plain functions of a view (tested without a DOM).
 *
 * A view maps content pixels (the image, or the outpaint canvas) to viewport pixels:
 * `screen = content * scale + offset`.
 */

export interface View {
  scale: number;
  x: number;
  y: number;
}

export interface Size {
  width: number;
  height: number;
}

export interface Point {
  x: number;
  y: number;
}

/** Most screen pixels per content pixel: far enough to place a brush on single pixels. */
export const MAX_SCALE = 16;
export const ZOOM_STEP = 1.25;

/** The content centred in the viewport, as large as fits with a small margin. */
export function fitView(content: Size, viewport: Size, margin = 16): View {
  const usableWidth = Math.max(1, viewport.width - 2 * margin);
  const usableHeight = Math.max(1, viewport.height - 2 * margin);
  const scale = Math.min(usableWidth / content.width, usableHeight / content.height, MAX_SCALE);
  return {
    scale,
    x: (viewport.width - content.width * scale) / 2,
    y: (viewport.height - content.height * scale) / 2,
  };
}

/** Smallest allowed scale: a quarter of "fit", so the content never vanishes. */
export function minScale(content: Size, viewport: Size): number {
  return fitView(content, viewport).scale / 4;
}

/** Zoom by `factor` keeping the content point under `anchor` (viewport pixels) where it is. */
export function zoomAt(view: View, factor: number, anchor: Point, bounds: { min: number; max?: number }): View {
  const scale = Math.min(bounds.max ?? MAX_SCALE, Math.max(bounds.min, view.scale * factor));
  const ratio = scale / view.scale;
  return { scale, x: anchor.x - (anchor.x - view.x) * ratio, y: anchor.y - (anchor.y - view.y) * ratio };
}

export function panBy(view: View, dx: number, dy: number): View {
  return { ...view, x: view.x + dx, y: view.y + dy };
}

export function toContent(view: View, screen: Point): Point {
  return { x: (screen.x - view.x) / view.scale, y: (screen.y - view.y) / view.scale };
}

export function toScreen(view: View, content: Point): Point {
  return { x: content.x * view.scale + view.x, y: content.y * view.scale + view.y };
}

/** The smallest pan that brings a content point (with `padding` screen px around it) into view. */
export function ensureVisible(view: View, point: Point, viewport: Size, padding = 24): View {
  const screen = toScreen(view, point);
  let dx = 0;
  let dy = 0;
  if (screen.x < padding) dx = padding - screen.x;
  else if (screen.x > viewport.width - padding) dx = viewport.width - padding - screen.x;
  if (screen.y < padding) dy = padding - screen.y;
  else if (screen.y > viewport.height - padding) dy = viewport.height - padding - screen.y;
  return dx || dy ? panBy(view, dx, dy) : view;
}

/** Wheel deltas to a zoom factor: one notch (100 px, or 3 lines) is one ZOOM_STEP. */
export function wheelFactor(deltaY: number, deltaMode: number): number {
  const pixels = deltaMode === 1 ? deltaY * 33 : deltaMode === 2 ? deltaY * 400 : deltaY;
  return ZOOM_STEP ** (-pixels / 100);
}

/** Two-finger gesture: the view that keeps the content under the fingers' midpoint as they move. */
export function pinch(view: View, from: [Point, Point], to: [Point, Point], bounds: { min: number; max?: number }): View {
  const distance = (a: Point, b: Point) => Math.hypot(a.x - b.x, a.y - b.y) || 1;
  const mid = (a: Point, b: Point): Point => ({ x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 });
  const before = mid(...from);
  const after = mid(...to);
  const zoomed = zoomAt(view, distance(...to) / distance(...from), before, bounds);
  return panBy(zoomed, after.x - before.x, after.y - before.y);
}
