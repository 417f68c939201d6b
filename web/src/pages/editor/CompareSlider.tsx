import { useCallback, useRef, useState, type KeyboardEvent, type PointerEvent } from 'react';

interface Props {
  beforeSrc: string;
  afterSrc: string;
  /** The result's size in pixels (the frame's aspect ratio). */
  width: number;
  height: number;
  /** Where the original sits inside the result, as fractions of it (outpainting); whole frame by default. */
  beforeBox?: { left: number; top: number; width: number; height: number };
}

const clamp = (value: number) => Math.min(100, Math.max(0, value));

/**
 * Before/after comparison: the original on the left of the divider, the result on the right.
 * The divider is a role=slider: arrows move it 1 % (Shift: 10 %), Page Up/Down 10 %, Home/End the
 * ends; a mouse or finger drags it anywhere on the picture.
 */
export function CompareSlider({ beforeSrc, afterSrc, width, height, beforeBox }: Props) {
  const [position, setPosition] = useState(50);
  const frame = useRef<HTMLDivElement>(null);
  const dragging = useRef(false);

  const fromPointer = useCallback((clientX: number) => {
    const rect = frame.current?.getBoundingClientRect();
    if (!rect || rect.width === 0) return;
    setPosition(clamp(Math.round(((clientX - rect.left) / rect.width) * 1000) / 10));
  }, []);

  const onPointerDown = (event: PointerEvent<HTMLDivElement>) => {
    if (event.button !== 0) return;
    dragging.current = true;
    event.currentTarget.setPointerCapture(event.pointerId);
    fromPointer(event.clientX);
  };
  const onPointerMove = (event: PointerEvent<HTMLDivElement>) => {
    if (dragging.current) fromPointer(event.clientX);
  };
  const onPointerUp = () => {
    dragging.current = false;
  };

  const onKeyDown = (event: KeyboardEvent<HTMLDivElement>) => {
    const step = event.shiftKey ? 10 : 1;
    const moves: Record<string, (value: number) => number> = {
      ArrowLeft: (v) => v - step,
      ArrowDown: (v) => v - step,
      ArrowRight: (v) => v + step,
      ArrowUp: (v) => v + step,
      PageDown: (v) => v - 10,
      PageUp: (v) => v + 10,
      Home: () => 0,
      End: () => 100,
    };
    const move = moves[event.key];
    if (!move) return;
    event.preventDefault();
    setPosition((value) => clamp(move(value)));
  };

  const box = beforeBox ?? { left: 0, top: 0, width: 1, height: 1 };
  const rounded = Math.round(position);
  return (
    <figure className="compare">
      <div
        ref={frame}
        className="compare-frame"
        // As wide as fits, but never taller than 75 % of the screen: the width follows the aspect ratio.
        style={{ aspectRatio: `${width} / ${height}`, width: `min(100%, calc(75vh * ${width / height}))` }}
        onPointerDown={onPointerDown}
        onPointerMove={onPointerMove}
        onPointerUp={onPointerUp}
        onPointerCancel={onPointerUp}
        data-testid="compare-frame"
      >
        <img className="compare-after" src={afterSrc} alt="Result" draggable={false} />
        <div className="compare-before" style={{ clipPath: `inset(0 ${100 - position}% 0 0)` }}>
          <img
            src={beforeSrc}
            alt="Original"
            draggable={false}
            style={{
              left: `${box.left * 100}%`,
              top: `${box.top * 100}%`,
              width: `${box.width * 100}%`,
              height: `${box.height * 100}%`,
            }}
          />
        </div>
        <div
          className="compare-handle"
          role="slider"
          tabIndex={0}
          aria-label="Before and after divider"
          aria-valuemin={0}
          aria-valuemax={100}
          aria-valuenow={rounded}
          aria-valuetext={`${rounded}% original, ${100 - rounded}% result`}
          aria-orientation="horizontal"
          onKeyDown={onKeyDown}
          style={{ left: `${position}%` }}
        >
          <span className="compare-grip" aria-hidden="true" />
        </div>
      </div>
      <figcaption className="compare-caption">
        <span>Original</span>
        <span>Result</span>
      </figcaption>
    </figure>
  );
}
