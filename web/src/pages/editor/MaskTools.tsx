import { useState, type FormEvent } from 'react';
import { Button } from '../../components/Button';
import { RangeField } from '../../components/Field';
import type { Size } from './viewport';
import type { MaskApi, Tool } from './useMask';

interface Props {
  mask: MaskApi;
  tool: Tool;
  onToolChange: (tool: Tool) => void;
  brushSize: number;
  onBrushSizeChange: (size: number) => void;
  imageSize: Size;
}

const TOOLS: { value: Tool; label: string; key: string }[] = [
  { value: 'brush', label: 'Brush', key: 'B' },
  { value: 'eraser', label: 'Eraser', key: 'E' },
  { value: 'pan', label: 'Hand (pan)', key: 'H' },
];

export const MAX_BRUSH = 512;

/** Brush, eraser and hand; brush size; clear, invert, undo, redo; and a numeric rectangle. */
export function MaskTools({ mask, tool, onToolChange, brushSize, onBrushSizeChange, imageSize }: Props) {
  const { canUndo, canRedo, coverage } = mask.status;
  return (
    <div className="mask-tools">
      <div className="mask-tool-row" role="toolbar" aria-label="Mask tools">
        {TOOLS.map((t) => (
          <Button
            key={t.value}
            size="small"
            variant={tool === t.value ? 'primary' : 'secondary'}
            aria-pressed={tool === t.value}
            onClick={() => onToolChange(t.value)}
            title={`${t.label} (${t.key})`}
          >
            {t.label}
          </Button>
        ))}
        <span className="mask-tool-sep" aria-hidden="true" />
        <Button size="small" onClick={mask.undo} disabled={!canUndo} title="Undo (Ctrl+Z)">
          Undo
        </Button>
        <Button size="small" onClick={mask.redo} disabled={!canRedo} title="Redo (Ctrl+Shift+Z)">
          Redo
        </Button>
        <Button size="small" onClick={mask.invert}>
          Invert mask
        </Button>
        <Button size="small" onClick={mask.clear}>
          Clear mask
        </Button>
      </div>
      <RangeField
        label="Brush size"
        min={1}
        max={MAX_BRUSH}
        value={brushSize}
        onValueChange={onBrushSizeChange}
        format={(value) => `${value} px`}
      />
      <p className="muted mask-coverage" data-testid="mask-coverage">
        {coverage > 0 ? `${(coverage * 100).toFixed(1)} % of the image will be repainted.` : 'Nothing is masked yet: paint over the part to change.'}
      </p>
      <RectangleForm mask={mask} imageSize={imageSize} />
    </div>
  );
}

/** Keyboard and precise alternative to the brush: a rectangle by its numbers, in image pixels. */
function RectangleForm({ mask, imageSize }: { mask: MaskApi; imageSize: Size }) {
  const quarterW = Math.round(imageSize.width / 4);
  const quarterH = Math.round(imageSize.height / 4);
  const [rect, setRect] = useState({ x: quarterW, y: quarterH, width: quarterW * 2, height: quarterH * 2 });
  const [message, setMessage] = useState<string | null>(null);

  const apply = (erase: boolean) => {
    const done = mask.fillRect(rect, erase);
    setMessage(
      done
        ? `${erase ? 'Erased' : 'Masked'} ${rect.width}×${rect.height} px at ${rect.x}, ${rect.y}.`
        : 'That rectangle lies outside the image.',
    );
  };
  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    apply(false);
  };
  const field = (key: keyof typeof rect, label: string, max: number) => (
    <label className="rect-field">
      <span>{label}</span>
      <input
        type="number"
        min={0}
        max={max}
        step={1}
        value={rect[key]}
        onChange={(event) => setRect({ ...rect, [key]: Math.max(0, Math.round(Number(event.target.value) || 0)) })}
      />
    </label>
  );
  return (
    <details className="rect-form">
      <summary>Mask a rectangle by numbers</summary>
      <form onSubmit={onSubmit}>
        <div className="rect-fields">
          {field('x', 'Left (px)', imageSize.width)}
          {field('y', 'Top (px)', imageSize.height)}
          {field('width', 'Width (px)', imageSize.width)}
          {field('height', 'Height (px)', imageSize.height)}
        </div>
        <div className="button-row">
          <Button type="submit" size="small">
            Mask rectangle
          </Button>
          <Button size="small" onClick={() => apply(true)}>
            Erase rectangle
          </Button>
        </div>
        <p className="field-hint" role="status">
          {message}
        </p>
      </form>
    </details>
  );
}
