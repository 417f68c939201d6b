export interface ModelHealth {
  state: 'closed' | 'open' | 'half_open';
  available: boolean;
  retry_in_s: number;
  last_error: string | null;
  ttft_ms: number | null;
}

export interface CatalogueModel {
  id: string;
  name: string;
  roles: string[];
  vision: boolean;
  tools: boolean;
  description: string;
  health: ModelHealth;
}

export interface ModelsResponse {
  configured: boolean;
  endpoint: string;
  hint: string | null;
  auto: string;
  models: CatalogueModel[];
}

function optionLabel(model: CatalogueModel): string {
  const traits = [model.vision ? 'vision' : '', model.tools ? 'tools' : ''].filter(Boolean).join(', ');
  const health = model.health.available ? '' : ` — unavailable${model.health.retry_in_s > 0 ? `, retry in ${Math.ceil(model.health.retry_in_s)} s` : ''}`;
  return `${model.name}${traits ? ` (${traits})` : ''}${health}`;
}

/** Auto (Fimum routes) or one catalogue model, each with its live health. */
export function ModelPicker({ models, value, onChange }: { models: ModelsResponse | null; value: string; onChange: (id: string) => void }) {
  const list = models?.models ?? [];
  const available = list.filter((model) => model.health.available).length;
  return (
    <div className="model-picker">
      <label htmlFor="chat-model">Model</label>
      <select id="chat-model" value={value} onChange={(event) => onChange(event.target.value)} aria-describedby="chat-model-health">
        <option value={models?.auto ?? 'fimum/auto'}>Auto (Fimum picks and falls back)</option>
        {list.map((model) => (
          <option key={model.id} value={model.id}>
            {optionLabel(model)}
          </option>
        ))}
      </select>
      <span id="chat-model-health" className="muted model-health">
        {models ? `${available} of ${list.length} models available` : 'Loading models…'}
      </span>
    </div>
  );
}
