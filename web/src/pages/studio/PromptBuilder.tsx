import { useState, type KeyboardEvent } from 'react';
import { Button } from '../../components/Button';
import { FieldFrame } from '../../components/Field';
import { appendModifier, applyTemplate, LIMITS, PROMPT_MODIFIERS, PROMPT_TEMPLATES } from './studioForm';

interface PromptBuilderProps {
  prompt: string;
  onChange: (prompt: string) => void;
  error?: string | undefined;
  /** Ctrl/Cmd+Enter in the prompt starts the generation. */
  onSubmitShortcut: () => void;
}

/** The prompt, with template suggestions and one-click modifiers (each undoable once). */
export function PromptBuilder({ prompt, onChange, error, onSubmitShortcut }: PromptBuilderProps) {
  const [previous, setPrevious] = useState<string | null>(null);

  const replace = (next: string) => {
    if (next === prompt) return;
    setPrevious(prompt);
    onChange(next);
  };

  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      onSubmitShortcut();
    }
  };

  const count = `${prompt.length} / ${LIMITS.promptMax} characters. Ctrl+Enter generates.`;
  return (
    <div className="prompt-builder">
      <FieldFrame label="Prompt" hint={count} error={error}>
        {({ id, describedBy, invalid }) => (
          <textarea
            id={id}
            name="prompt"
            rows={4}
            value={prompt}
            placeholder="A lighthouse on a cliff at dusk, waves crashing below"
            aria-describedby={describedBy}
            aria-invalid={invalid || undefined}
            onChange={(event) => {
              setPrevious(null);
              onChange(event.target.value);
            }}
            onKeyDown={onKeyDown}
          />
        )}
      </FieldFrame>
      {previous !== null && (
        <p className="prompt-undo">
          <Button size="small" variant="ghost" onClick={() => { onChange(previous); setPrevious(null); }}>
            Undo last suggestion
          </Button>
        </p>
      )}
      <details className="prompt-helpers">
        <summary>Prompt ideas: templates and modifiers</summary>
        <div role="group" aria-labelledby="prompt-templates-title">
          <h3 id="prompt-templates-title" className="helper-title">
            Templates <span className="muted">(wrap what you typed)</span>
          </h3>
          <ul className="template-list">
            {PROMPT_TEMPLATES.map((template) => (
              <li key={template.label}>
                <button type="button" className="template" onClick={() => replace(applyTemplate(template.template, prompt))}>
                  <span className="template-label">{template.label}</span>
                  <span className="template-text">{template.template.replace('{subject}', '…')}</span>
                </button>
              </li>
            ))}
          </ul>
        </div>
        {PROMPT_MODIFIERS.map((group) => (
          <div key={group.group} role="group" aria-label={`${group.group} modifiers`} className="modifier-group">
            <h3 className="helper-title">{group.group}</h3>
            <div className="chip-row">
              {group.items.map((item) => (
                <button key={item} type="button" className="chip" onClick={() => replace(appendModifier(prompt, item))}>
                  <span aria-hidden="true">+ </span>
                  <span className="visually-hidden">Add </span>
                  {item}
                </button>
              ))}
            </div>
          </div>
        ))}
      </details>
    </div>
  );
}
