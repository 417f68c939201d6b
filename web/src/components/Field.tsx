import { useId, type ComponentPropsWithRef, type InputHTMLAttributes, type ReactNode } from 'react';

interface FieldFrameProps {
  label: ReactNode;
  /** Help text under the control, linked with aria-describedby. */
  hint?: ReactNode;
  /** Error text: marks the control aria-invalid and is read with it. */
  error?: ReactNode;
  children: (ids: { id: string; describedBy: string | undefined; invalid: boolean }) => ReactNode;
  className?: string;
}

/** Label + control + hint + error, wired together for assistive technology. */
export function FieldFrame({ label, hint, error, children, className }: FieldFrameProps) {
  const id = useId();
  const hintId = hint ? `${id}-hint` : undefined;
  const errorId = error ? `${id}-error` : undefined;
  const describedBy = [hintId, errorId].filter(Boolean).join(' ') || undefined;
  return (
    <div className={['field', className ?? ''].filter(Boolean).join(' ')}>
      <label htmlFor={id}>{label}</label>
      {children({ id, describedBy, invalid: Boolean(error) })}
      {hint && (
        <p id={hintId} className="field-hint">
          {hint}
        </p>
      )}
      {error && (
        <p id={errorId} className="field-error">
          {error}
        </p>
      )}
    </div>
  );
}

type Common = { label: ReactNode; hint?: ReactNode; error?: ReactNode; fieldClassName?: string };

export function TextField({ label, hint, error, fieldClassName, ...input }: Common & ComponentPropsWithRef<'input'>) {
  return (
    <FieldFrame label={label} hint={hint} error={error} className={fieldClassName}>
      {({ id, describedBy, invalid }) => (
        <input id={id} aria-describedby={describedBy} aria-invalid={invalid || undefined} {...input} />
      )}
    </FieldFrame>
  );
}

export function TextAreaField({ label, hint, error, fieldClassName, ...textarea }: Common & ComponentPropsWithRef<'textarea'>) {
  return (
    <FieldFrame label={label} hint={hint} error={error} className={fieldClassName}>
      {({ id, describedBy, invalid }) => (
        <textarea id={id} aria-describedby={describedBy} aria-invalid={invalid || undefined} {...textarea} />
      )}
    </FieldFrame>
  );
}

export function SelectField({ label, hint, error, fieldClassName, children, ...select }: Common & ComponentPropsWithRef<'select'>) {
  return (
    <FieldFrame label={label} hint={hint} error={error} className={fieldClassName}>
      {({ id, describedBy, invalid }) => (
        <select id={id} aria-describedby={describedBy} aria-invalid={invalid || undefined} {...select}>
          {children}
        </select>
      )}
    </FieldFrame>
  );
}

interface RangeFieldProps extends Omit<InputHTMLAttributes<HTMLInputElement>, 'type' | 'value' | 'onChange'> {
  label: ReactNode;
  value: number;
  onValueChange: (value: number) => void;
  /** How the current value is shown next to the label (defaults to the number). */
  format?: (value: number) => string;
  hint?: ReactNode;
}

/** A labelled native range slider that shows its value (keyboard: arrows, Page Up/Down, Home/End). */
export function RangeField({ label, value, onValueChange, format, hint, ...input }: RangeFieldProps) {
  const id = useId();
  const hintId = hint ? `${id}-hint` : undefined;
  const shown = format ? format(value) : String(value);
  return (
    <div className="field field-range">
      <div className="field-range-label">
        <label htmlFor={id}>{label}</label>
        <output htmlFor={id} aria-hidden="true">
          {shown}
        </output>
      </div>
      <input
        id={id}
        type="range"
        value={value}
        aria-valuetext={shown}
        aria-describedby={hintId}
        onChange={(event) => onValueChange(Number(event.target.value))}
        {...input}
      />
      {hint && (
        <p id={hintId} className="field-hint">
          {hint}
        </p>
      )}
    </div>
  );
}
