import { useCallback, useEffect, useId, useLayoutEffect, useRef, useState, type KeyboardEvent, type PointerEvent } from 'react';
import { Button } from '../../components/Button';
import { snapMargin, type Margins } from '../../lib/uploadValidation';
import { MASK_FILL, type MaskApi, type Tool } from './useMask';
import {
  ZOOM_STEP,
  ensureVisible,
  fitView,
  minScale,
  panBy,
  pinch,
  toContent,
  toScreen,
  wheelFactor,
  zoomAt,
  type Point,
  type Size,
  type View,
} from './viewport';

export type EditMode = 'inpaint' | 'image-to-image' | 'outpaint' | 'upscale';
type Side = keyof Margins;

interface Props {
  imageUrl: string;
  imageSize: Size;
  mode: EditMode;
  tool: Tool;
  onToolChange: (tool: Tool) => void;
  brushSize: number;
  onBrushSizeChange: (size: number) => void;
  mask: MaskApi;
  margins: Margins;
  onMarginsChange: (margins: Margins) => void;
}

type Gesture =
  | { kind: 'none' }
  | { kind: 'paint'; pointerId: number; last: Point }
  | { kind: 'pan'; pointerId: number; last: Point }
  | { kind: 'pinch'; last: [Point, Point] }
  | { kind: 'margin'; pointerId: number; side: Side; start: Point; startMargins: Margins };

const SIDES: Side[] = ['left', 'right', 'top', 'bottom'];

/**
 * The canvas: the image with the mask layer over it (inpainting) or inside the extended frame
 * (outpainting); zoom (buttons, wheel, + / - / 0 keys, pinch) and pan (hand tool, middle button,
 * two fingers, or the view following the keyboard cursor).
 *
 * Keyboard, with the canvas focused: arrows move a brush cursor (Shift: further), Space paints
 * (held while moving: a stroke), B / E / H pick brush, eraser, hand, [ and ] change the brush size.
 */
export function EditorCanvas({
  imageUrl,
  imageSize,
  mode,
  tool,
  onToolChange,
  brushSize,
  onBrushSizeChange,
  mask,
  margins,
  onMarginsChange,
}: Props) {
  const viewportRef = useRef<HTMLDivElement>(null);
  const [viewport, setViewport] = useState<Size>({ width: 0, height: 0 });
  const [view, setView] = useState<View>({ scale: 1, x: 0, y: 0 });
  const [hover, setHover] = useState<Point | null>(null);
  const [keyCursor, setKeyCursor] = useState<Point | null>(null);
  const gesture = useRef<Gesture>({ kind: 'none' });
  const pointers = useRef(new Map<number, Point>());
  const spaceDown = useRef(false);
  // While an outpaint edge is dragged the view holds still; on release it refits the new frame.
  const [marginDrag, setMarginDrag] = useState(false);
  const helpId = useId();

  const painting = mode === 'inpaint';
  const outpainting = mode === 'outpaint';
  const offset: Point = outpainting ? { x: margins.left, y: margins.top } : { x: 0, y: 0 };
  const content: Size = outpainting
    ? { width: imageSize.width + margins.left + margins.right, height: imageSize.height + margins.top + margins.bottom }
    : imageSize;
  const bounds = { min: viewport.width ? minScale(content, viewport) : 0.01 };

  // Track the viewport's size; fit the content whenever the image, the mode or that size changes.
  useLayoutEffect(() => {
    const element = viewportRef.current;
    if (!element) return;
    const observer = new ResizeObserver(([entry]) => {
      if (entry) setViewport({ width: entry.contentRect.width, height: entry.contentRect.height });
    });
    observer.observe(element);
    return () => observer.disconnect();
  }, []);

  const fit = useCallback(() => {
    if (viewport.width > 0) setView(fitView(content, viewport));
    // The content's size, not its identity: margins dragging must not refit every frame.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [content.width, content.height, viewport]);

  const marginKey = outpainting && !marginDrag ? `${margins.left},${margins.right},${margins.top},${margins.bottom}` : '';
  const fitKey = `${imageUrl}|${mode}|${viewport.width}x${viewport.height}|${marginKey}`;
  useEffect(() => {
    fit();
    // Refit for a new image, mode, viewport size or typed margins (not during an edge drag).
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [fitKey]);

  const zoomBy = useCallback(
    (factor: number, anchor?: Point) =>
      setView((v) => zoomAt(v, factor, anchor ?? { x: viewport.width / 2, y: viewport.height / 2 }, bounds)),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [viewport, bounds.min],
  );

  // Wheel zoom needs a non-passive listener to keep the page from scrolling.
  useEffect(() => {
    const element = viewportRef.current;
    if (!element) return;
    const onWheel = (event: WheelEvent) => {
      event.preventDefault();
      const rect = element.getBoundingClientRect();
      zoomBy(wheelFactor(event.deltaY, event.deltaMode), { x: event.clientX - rect.left, y: event.clientY - rect.top });
    };
    element.addEventListener('wheel', onWheel, { passive: false });
    return () => element.removeEventListener('wheel', onWheel);
  }, [zoomBy]);

  const local = (event: { clientX: number; clientY: number }): Point => {
    const rect = viewportRef.current?.getBoundingClientRect();
    return rect ? { x: event.clientX - rect.left, y: event.clientY - rect.top } : { x: 0, y: 0 };
  };
  /** Viewport point → image pixel (the mask canvas's coordinates). */
  const toImage = (point: Point): Point => {
    const c = toContent(view, point);
    return { x: c.x - offset.x, y: c.y - offset.y };
  };

  const dab = (from: Point, to: Point, erase: boolean) => {
    const ctx = mask.context();
    if (!ctx) return;
    ctx.globalCompositeOperation = erase ? 'destination-out' : 'source-over';
    ctx.strokeStyle = MASK_FILL;
    ctx.fillStyle = MASK_FILL;
    ctx.lineWidth = brushSize;
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    if (from.x === to.x && from.y === to.y) {
      ctx.beginPath();
      ctx.arc(to.x, to.y, brushSize / 2, 0, Math.PI * 2);
      ctx.fill();
    } else {
      ctx.beginPath();
      ctx.moveTo(from.x, from.y);
      ctx.lineTo(to.x, to.y);
      ctx.stroke();
    }
    ctx.globalCompositeOperation = 'source-over';
  };

  const endGesture = () => {
    if (gesture.current.kind === 'paint') mask.commit();
    if (gesture.current.kind === 'margin') setMarginDrag(false);
    gesture.current = { kind: 'none' };
  };

  const onPointerDown = (event: PointerEvent<HTMLDivElement>) => {
    const point = local(event);
    pointers.current.set(event.pointerId, point);
    event.currentTarget.setPointerCapture(event.pointerId);
    if (pointers.current.size === 2) {
      // A second finger: this is a pinch, not a stroke; drop the half-drawn stroke.
      if (gesture.current.kind === 'paint') mask.revert();
      const [a, b] = [...pointers.current.values()] as [Point, Point];
      gesture.current = { kind: 'pinch', last: [a, b] };
      return;
    }
    if (pointers.current.size > 2) return;
    const wantsPan = tool === 'pan' || !painting || event.button === 1;
    if (wantsPan) {
      gesture.current = { kind: 'pan', pointerId: event.pointerId, last: point };
    } else if (event.button === 0) {
      const at = toImage(point);
      gesture.current = { kind: 'paint', pointerId: event.pointerId, last: at };
      dab(at, at, tool === 'eraser');
    }
    event.preventDefault();
  };

  const onPointerMove = (event: PointerEvent<HTMLDivElement>) => {
    const point = local(event);
    if (event.pointerType === 'mouse') setHover(point);
    if (!pointers.current.has(event.pointerId)) return;
    pointers.current.set(event.pointerId, point);
    const g = gesture.current;
    if (g.kind === 'pinch') {
      const next = [...pointers.current.values()].slice(0, 2) as [Point, Point];
      setView((v) => pinch(v, g.last, next, bounds));
      gesture.current = { kind: 'pinch', last: next };
    } else if (g.kind === 'pan' && g.pointerId === event.pointerId) {
      setView((v) => panBy(v, point.x - g.last.x, point.y - g.last.y));
      gesture.current = { ...g, last: point };
    } else if (g.kind === 'paint' && g.pointerId === event.pointerId) {
      // Coalesced events keep fast strokes smooth (browsers batch pointermoves per frame).
      const events = event.nativeEvent.getCoalescedEvents?.() ?? [];
      let last = g.last;
      for (const e of events.length ? events : [event.nativeEvent]) {
        const at = toImage(local(e));
        dab(last, at, tool === 'eraser');
        last = at;
      }
      gesture.current = { ...g, last };
    } else if (g.kind === 'margin' && g.pointerId === event.pointerId) {
      dragMargin(g, point);
    }
  };

  const onPointerUp = (event: PointerEvent<HTMLDivElement>) => {
    pointers.current.delete(event.pointerId);
    if (gesture.current.kind === 'pinch') {
      if (pointers.current.size < 2) gesture.current = { kind: 'none' };
      return;
    }
    endGesture();
  };

  const dragMargin = (g: Extract<Gesture, { kind: 'margin' }>, point: Point) => {
    const dx = (point.x - g.start.x) / view.scale;
    const dy = (point.y - g.start.y) / view.scale;
    const delta = { left: -dx, right: dx, top: -dy, bottom: dy }[g.side];
    const value = snapMargin(g.startMargins[g.side] + delta);
    if (value === margins[g.side]) return;
    // Growing the left or top side moves the image inside the content: pan to keep it in place.
    const shift = value - margins[g.side];
    if (g.side === 'left') setView((v) => panBy(v, -shift * v.scale, 0));
    if (g.side === 'top') setView((v) => panBy(v, 0, -shift * v.scale));
    onMarginsChange({ ...margins, [g.side]: value });
  };

  const onHandleDown = (side: Side) => (event: PointerEvent<HTMLDivElement>) => {
    event.stopPropagation();
    const point = local(event);
    pointers.current.set(event.pointerId, point);
    viewportRef.current?.setPointerCapture(event.pointerId);
    gesture.current = { kind: 'margin', pointerId: event.pointerId, side, start: point, startMargins: margins };
    setMarginDrag(true);
  };

  // --- Keyboard ---------------------------------------------------------------------------------
  const moveKeyCursor = (dx: number, dy: number) => {
    const from = keyCursor ?? { x: imageSize.width / 2, y: imageSize.height / 2 };
    const to = {
      x: Math.min(imageSize.width, Math.max(0, from.x + dx)),
      y: Math.min(imageSize.height, Math.max(0, from.y + dy)),
    };
    if (spaceDown.current && painting && tool !== 'pan') dab(from, to, tool === 'eraser');
    setKeyCursor(to);
    setView((v) => ensureVisible(v, { x: to.x + offset.x, y: to.y + offset.y }, viewport));
  };

  const onKeyDown = (event: KeyboardEvent<HTMLDivElement>) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return; // undo/redo are page-wide
    const key = event.key;
    const arrows: Record<string, [number, number]> = {
      ArrowLeft: [-1, 0],
      ArrowRight: [1, 0],
      ArrowUp: [0, -1],
      ArrowDown: [0, 1],
    };
    const arrow = arrows[key];
    if (arrow) {
      event.preventDefault();
      if (tool === 'pan' || !painting) {
        const step = event.shiftKey ? 120 : 30;
        setView((v) => panBy(v, -arrow[0] * step, -arrow[1] * step));
      } else {
        // A quarter of the brush per press (Shift: two brushes), at least one image pixel.
        const step = Math.max(1, event.shiftKey ? brushSize * 2 : Math.round(brushSize / 4));
        moveKeyCursor(arrow[0] * step, arrow[1] * step);
      }
      return;
    }
    if (key === ' ' && painting && tool !== 'pan') {
      event.preventDefault();
      if (!spaceDown.current) {
        spaceDown.current = true;
        const at = keyCursor ?? { x: imageSize.width / 2, y: imageSize.height / 2 };
        setKeyCursor(at);
        dab(at, at, tool === 'eraser');
      }
      return;
    }
    const actions: Record<string, () => void> = {
      '+': () => zoomBy(ZOOM_STEP),
      '=': () => zoomBy(ZOOM_STEP),
      '-': () => zoomBy(1 / ZOOM_STEP),
      '0': fit,
      b: () => onToolChange('brush'),
      e: () => onToolChange('eraser'),
      h: () => onToolChange('pan'),
      '[': () => onBrushSizeChange(Math.max(1, Math.round(brushSize / 1.2))),
      ']': () => onBrushSizeChange(Math.min(512, Math.round(brushSize * 1.2) + 1)),
    };
    const action = actions[key.toLowerCase()];
    if (action) {
      event.preventDefault();
      action();
    }
  };

  const onKeyUp = (event: KeyboardEvent<HTMLDivElement>) => {
    if (event.key === ' ' && spaceDown.current) {
      spaceDown.current = false;
      mask.commit();
    }
  };

  // --- Rendering -------------------------------------------------------------------------------
  const stageStyle = {
    width: content.width,
    height: content.height,
    transform: `translate(${view.x}px, ${view.y}px) scale(${view.scale})`,
  };
  const layerStyle = { left: offset.x, top: offset.y, width: imageSize.width, height: imageSize.height };
  const brushCursor = (point: Point | null, kind: 'hover' | 'key') => {
    if (!point || !painting || tool === 'pan') return null;
    const screen = kind === 'key' ? toScreen(view, { x: point.x + offset.x, y: point.y + offset.y }) : point;
    const size = brushSize * view.scale;
    return (
      <div
        className={`brush-cursor brush-cursor-${kind}${tool === 'eraser' ? ' brush-cursor-eraser' : ''}`}
        style={{ width: size, height: size, left: screen.x - size / 2, top: screen.y - size / 2 }}
        aria-hidden="true"
      />
    );
  };

  const handle = (side: Side) => {
    const topLeft = toScreen(view, { x: 0, y: 0 });
    const bottomRight = toScreen(view, { x: content.width, y: content.height });
    const midX = (topLeft.x + bottomRight.x) / 2;
    const midY = (topLeft.y + bottomRight.y) / 2;
    const position = {
      left: { left: topLeft.x, top: midY },
      right: { left: bottomRight.x, top: midY },
      top: { left: midX, top: topLeft.y },
      bottom: { left: midX, top: bottomRight.y },
    }[side];
    return (
      <div
        key={side}
        className={`outpaint-handle outpaint-handle-${side}`}
        style={position}
        onPointerDown={onHandleDown(side)}
        data-testid={`outpaint-handle-${side}`}
        title={`Drag to extend the ${side} side`}
        aria-hidden="true"
      />
    );
  };

  const label =
    mode === 'inpaint'
      ? 'Mask canvas: paint the area to repaint'
      : mode === 'outpaint'
        ? 'Outpaint canvas: the image inside its extended frame'
        : 'Image canvas';
  return (
    <div className="editor-canvas">
      <div className="editor-zoom" role="toolbar" aria-label="Zoom">
        <Button size="small" onClick={() => zoomBy(1 / ZOOM_STEP)} aria-label="Zoom out" title="Zoom out (-)">
          −
        </Button>
        <output className="editor-zoom-level" aria-live="polite" aria-label="Zoom level">
          {Math.round(view.scale * 100)}%
        </output>
        <Button size="small" onClick={() => zoomBy(ZOOM_STEP)} aria-label="Zoom in" title="Zoom in (+)">
          +
        </Button>
        <Button size="small" onClick={fit} title="Fit to view (0)">
          Fit
        </Button>
      </div>
      {/* role=application: the canvas takes arrow keys and Space itself (described in the help text);
          jsx-a11y does not count that role as interactive, though it is the ARIA role for exactly this. */}
      {/* eslint-disable jsx-a11y/no-noninteractive-element-interactions, jsx-a11y/no-noninteractive-tabindex */}
      <div
        ref={viewportRef}
        className={`editor-viewport tool-${painting ? tool : 'pan'}`}
        role="application"
        aria-roledescription="canvas"
        aria-label={label}
        aria-describedby={helpId}
        tabIndex={0}
        onPointerDown={onPointerDown}
        onPointerMove={onPointerMove}
        onPointerUp={onPointerUp}
        onPointerCancel={onPointerUp}
        onPointerLeave={() => setHover(null)}
        onKeyDown={onKeyDown}
        onKeyUp={onKeyUp}
        onFocus={() => painting && setKeyCursor((c) => c ?? { x: imageSize.width / 2, y: imageSize.height / 2 })}
        onBlur={() => {
          setKeyCursor(null);
          if (spaceDown.current) {
            spaceDown.current = false;
            mask.commit();
          }
        }}
        data-testid="editor-viewport"
      >
        {/* eslint-enable jsx-a11y/no-noninteractive-element-interactions, jsx-a11y/no-noninteractive-tabindex */}
        <div className={`editor-stage${view.scale >= 3 ? ' pixelated' : ''}`} style={stageStyle}>
          {outpainting && <div className="outpaint-area" aria-hidden="true" />}
          <img className="editor-image" src={imageUrl} alt="" style={layerStyle} draggable={false} />
          <canvas
            ref={mask.canvasRef}
            className="editor-mask"
            width={imageSize.width}
            height={imageSize.height}
            style={{ ...layerStyle, visibility: painting ? 'visible' : 'hidden' }}
            data-testid="mask-canvas"
          />
          {outpainting && <div className="outpaint-original" style={layerStyle} aria-hidden="true" />}
        </div>
        {outpainting && SIDES.map(handle)}
        {brushCursor(hover, 'hover')}
        {brushCursor(keyCursor, 'key')}
      </div>
      <p id={helpId} className="field-hint">
        {painting
          ? 'Mouse or finger: paint. Wheel or pinch: zoom. Keyboard: arrows move the brush, hold Space to paint, B brush, E eraser, H hand (arrows pan), [ ] brush size, + − 0 zoom; Ctrl+Z undo, Ctrl+Shift+Z redo.'
          : outpainting
            ? 'Drag the frame’s edges to extend the canvas, or type the sizes below. Drag to pan; wheel, pinch or + − 0 to zoom; arrows pan.'
            : 'Drag to pan; wheel, pinch or + − 0 to zoom; arrows pan.'}
      </p>
    </div>
  );
}
