import type { StylePreset } from '../../queue/types';
import { StylePreview } from './StylePreview';

interface StylePresetPickerProps {
  presets: StylePreset[];
  selected: string | null;
  onSelect: (preset: StylePreset | null) => void;
  error?: string | undefined;
}

function suggestion(preset: StylePreset): string {
  const parts = [
    preset.steps !== null ? `${preset.steps} steps` : null,
    preset.guidance_scale !== null ? `guidance ${preset.guidance_scale}` : null,
    preset.scheduler,
  ].filter(Boolean);
  return parts.join(' · ');
}

/** A radio group of style cards: preview, name, description and the settings it suggests. */
export function StylePresetPicker({ presets, selected, onSelect, error }: StylePresetPickerProps) {
  const options: (StylePreset | null)[] = [null, ...presets];
  return (
    <fieldset className="studio-fieldset" aria-describedby={error ? 'style-error' : undefined}>
      <legend>Style</legend>
      <div className="style-grid">
        {options.map((preset) => {
          const name = preset?.name ?? null;
          const checked = selected === name;
          const descriptionId = `style-${name ?? 'none'}-description`;
          const nameId = `style-${name ?? 'none'}-name`;
          return (
            <label key={name ?? 'none'} className={checked ? 'style-card selected' : 'style-card'}>
              <input
                type="radio"
                name="style_preset"
                className="style-radio"
                value={name ?? ''}
                checked={checked}
                aria-labelledby={nameId}
                aria-describedby={descriptionId}
                onChange={() => onSelect(preset)}
              />
              <StylePreview name={name} />
              <span id={nameId} className="style-name">{preset ? titleCase(preset.name) : 'No style'}</span>
              <span id={descriptionId} className="style-description">
                {preset ? preset.description : 'Your prompt as written.'}
                {preset && suggestion(preset) && <span className="style-suggestion"> {suggestion(preset)}</span>}
              </span>
            </label>
          );
        })}
      </div>
      {error && (
        <p id="style-error" className="field-error">
          {error}
        </p>
      )}
    </fieldset>
  );
}

function titleCase(name: string): string {
  return name
    .split('-')
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join(' ');
}
