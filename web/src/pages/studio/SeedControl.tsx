import { Button } from '../../components/Button';
import { TextField } from '../../components/Field';
import { LIMITS, randomSeed } from './studioForm';

interface SeedControlProps {
  seed: number;
  locked: boolean;
  batch: number;
  error?: string | undefined;
  onChange: (value: { seed: number; seedLocked: boolean }) => void;
}

/** Lock a seed to reproduce an image (image i of a batch gets seed + i), or draw a new one per run. */
export function SeedControl({ seed, locked, batch, error, onChange }: SeedControlProps) {
  const hint = locked
    ? batch > 1
      ? `Locked: images use seeds ${seed} to ${seed + batch - 1}.`
      : 'Locked: the same settings give the same image.'
    : 'Unlocked: every image gets a new random seed (shown with the result).';
  return (
    <fieldset className="studio-fieldset seed-control">
      <legend>Seed</legend>
      <label className="toggle">
        <input
          type="checkbox"
          checked={locked}
          onChange={(event) => onChange({ seed, seedLocked: event.target.checked })}
        />
        <span>Lock seed</span>
      </label>
      <div className="seed-row">
        <TextField
          label="Seed value"
          type="number"
          inputMode="numeric"
          name="seed"
          min={0}
          max={LIMITS.seedMax}
          step={1}
          value={Number.isFinite(seed) ? seed : ''}
          hint={hint}
          error={error}
          fieldClassName="seed-field"
          // Typing a seed means wanting that seed: lock it.
          onChange={(event) => onChange({ seed: Math.trunc(event.target.valueAsNumber), seedLocked: true })}
        />
        <Button size="small" onClick={() => onChange({ seed: randomSeed(), seedLocked: locked })}>
          Randomise
        </Button>
      </div>
    </fieldset>
  );
}
