import { Button } from '../../components/Button';
import { TextField } from '../../components/Field';
import { ASPECT_PRESETS, LIMITS, snapSize } from './studioForm';

interface SizePickerProps {
  width: number;
  height: number;
  maxSide: number;
  errors: { width?: string | undefined; height?: string | undefined };
  onChange: (size: { width: number; height: number }) => void;
}

/** Width and height in 64 px steps, with SDXL's aspect presets and a swap button. */
export function SizePicker({ width, height, maxSide, errors, onChange }: SizePickerProps) {
  const megapixels = ((width * height) / 1_000_000).toFixed(2);
  const sideInput = (side: 'width' | 'height', value: number) => (
    <TextField
      label={side === 'width' ? 'Width (px)' : 'Height (px)'}
      type="number"
      inputMode="numeric"
      name={side}
      min={LIMITS.sizeMin}
      max={maxSide}
      step={LIMITS.sizeStep}
      value={Number.isFinite(value) && value > 0 ? value : ''}
      error={errors[side]}
      fieldClassName="size-field"
      onChange={(event) => onChange({ width, height, [side]: event.target.valueAsNumber || 0 })}
      // Typed values snap to the nearest valid size when the field is left.
      onBlur={() => onChange({ width, height, [side]: snapSize(value, maxSide) })}
    />
  );
  return (
    <fieldset className="studio-fieldset">
      <legend>Size</legend>
      <div className="chip-row" role="group" aria-label="Aspect ratio presets">
        {ASPECT_PRESETS.map((preset) => {
          const active = preset.width === width && preset.height === height;
          return (
            <button
              key={preset.label}
              type="button"
              className={active ? 'chip chip-active' : 'chip'}
              aria-pressed={active}
              title={`${preset.width} × ${preset.height}`}
              onClick={() => onChange({ width: preset.width, height: preset.height })}
            >
              {preset.label}
              <span className="visually-hidden">, {preset.width} by {preset.height}</span>
            </button>
          );
        })}
      </div>
      <div className="size-row">
        {sideInput('width', width)}
        <Button size="small" className="size-swap" onClick={() => onChange({ width: height, height: width })}>
          <span aria-hidden="true">⇄</span> Swap
        </Button>
        {sideInput('height', height)}
      </div>
      <p className="field-hint">
        {width} × {height} px ({megapixels} MP). Steps of {LIMITS.sizeStep} px, {LIMITS.sizeMin}–{maxSide}. SDXL is trained at
        about 1 MP; larger sizes are generated at 1 MP and upscaled.
      </p>
    </fieldset>
  );
}
