/** An indeterminate progress indicator with an accessible name. */
export function Spinner({ label = 'Loading', inline = false }: { label?: string; inline?: boolean }) {
  return (
    <div className={inline ? 'spinner spinner-inline' : 'spinner'} role="status">
      <span className="spinner-circle" aria-hidden="true" />
      <span className={inline ? 'visually-hidden' : 'spinner-label'}>{label}…</span>
    </div>
  );
}
