const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export function formatTime(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : timeFormat.format(date);
}

/** "meta-llama/llama-3.3-70b-instruct:free" -> the catalogue's name when known, else the id. */
export function modelLabel(id: string | null, names: Map<string, string>): string {
  if (!id) return 'the model';
  return names.get(id) ?? id;
}
