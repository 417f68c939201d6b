import { OUTPAINT_MAX_MARGIN, OUTPAINT_STEP, snapMargin, type Margins } from '../../lib/uploadValidation';
import type { Size } from './viewport';

const SIDES: { key: keyof Margins; label: string }[] = [
  { key: 'left', label: 'Left' },
  { key: 'right', label: 'Right' },
  { key: 'top', label: 'Top' },
  { key: 'bottom', label: 'Bottom' },
];

/** The outpaint margins by numbers (the frame's handles drag the same values). */
export function OutpaintFields({ margins, onChange, image }: { margins: Margins; onChange: (m: Margins) => void; image: Size }) {
  const width = image.width + margins.left + margins.right;
  const height = image.height + margins.top + margins.bottom;
  return (
    <fieldset className="outpaint-fields">
      <legend>Extend by (px)</legend>
      <div className="rect-fields">
        {SIDES.map(({ key, label }) => (
          <label key={key} className="rect-field">
            <span>{label}</span>
            <input
              type="number"
              min={0}
              max={OUTPAINT_MAX_MARGIN}
              step={OUTPAINT_STEP}
              value={margins[key]}
              onChange={(event) => onChange({ ...margins, [key]: Number(event.target.value) || 0 })}
              onBlur={() => onChange({ ...margins, [key]: snapMargin(margins[key]) })}
            />
          </label>
        ))}
      </div>
      <p className="field-hint" aria-live="polite">
        New size: {width}×{height} px. Steps of {OUTPAINT_STEP} px, up to {OUTPAINT_MAX_MARGIN} per side.
      </p>
    </fieldset>
  );
}
