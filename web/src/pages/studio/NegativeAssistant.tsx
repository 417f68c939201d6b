import { TextField } from '../../components/Field';
import { NEGATIVE_TERMS, negativePrompt, type StudioForm } from './studioForm';

interface NegativeAssistantProps {
  terms: string[];
  extra: string;
  error?: string | undefined;
  onChange: (value: Pick<StudioForm, 'negativeTerms' | 'negativeExtra'>) => void;
}

/** Common exclusions as toggles plus free text; shows the negative prompt that will be sent. */
export function NegativeAssistant({ terms, extra, error, onChange }: NegativeAssistantProps) {
  const toggle = (id: string, on: boolean) => {
    const next = on ? [...terms, id] : terms.filter((term) => term !== id);
    onChange({ negativeTerms: next, negativeExtra: extra });
  };
  const sent = negativePrompt({ negativeTerms: terms, negativeExtra: extra });
  return (
    <fieldset className="studio-fieldset">
      <legend>Negative prompt: what to keep out</legend>
      <div className="toggle-grid">
        {NEGATIVE_TERMS.map((term) => (
          <label key={term.id} className="toggle" title={term.text}>
            <input type="checkbox" checked={terms.includes(term.id)} onChange={(event) => toggle(term.id, event.target.checked)} />
            <span>{term.label}</span>
          </label>
        ))}
      </div>
      <TextField
        label="Other exclusions"
        name="negative_prompt"
        value={extra}
        placeholder="e.g. people, cars"
        error={error}
        onChange={(event) => onChange({ negativeTerms: terms, negativeExtra: event.target.value })}
      />
      <p className="negative-sent muted">
        <span className="negative-sent-label">Sent as:</span> {sent || <em>nothing</em>}
      </p>
    </fieldset>
  );
}
