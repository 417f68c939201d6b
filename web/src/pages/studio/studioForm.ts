// The studio's form: defaults, limits (the API's, src/fimum_ai/images/requests.py), what is sent,
// what survives a reload (sessionStorage), and prefilling from a stored image. Pure functions.

import type { EditBody, GenerateBody, ImageView, JobRequest, StylePreset } from '../../queue/types';

export const LIMITS = {
  promptMax: 1000,
  sizeMin: 512,
  sizeMax: 4096,
  sizeStep: 64,
  stepsMin: 20,
  stepsMax: 100,
  guidanceMin: 1,
  guidanceMax: 15,
  guidanceStep: 0.5,
  batchMin: 1,
  batchMax: 8,
  seedMax: 2 ** 32 - 1 - 8,
} as const;

export interface StudioForm {
  prompt: string;
  /** Ids of the negative-prompt assistant's toggles that are on (NEGATIVE_TERMS). */
  negativeTerms: string[];
  /** Free-text negative prompt, joined after the toggles. */
  negativeExtra: string;
  stylePreset: string | null;
  steps: number;
  guidanceScale: number;
  width: number;
  height: number;
  seed: number;
  /** Locked: every run uses `seed` (image i of a batch: seed + i). Unlocked: a new seed per run. */
  seedLocked: boolean;
  batch: number;
  /** Image-to-image: start from this stored image with `strength`. */
  sourceImageId: string | null;
  strength: number;
}

export const DEFAULT_FORM: StudioForm = {
  prompt: '',
  negativeTerms: ['blurry', 'low-quality', 'watermark'],
  negativeExtra: '',
  stylePreset: null,
  steps: 30,
  guidanceScale: 7.5,
  width: 1024,
  height: 1024,
  seed: 42,
  seedLocked: false,
  batch: 1,
  sourceImageId: null,
  strength: 0.6,
};

/** The negative-prompt assistant: common exclusions as toggles. */
export const NEGATIVE_TERMS: readonly { id: string; label: string; text: string }[] = [
  { id: 'blurry', label: 'Blur', text: 'blurry, out of focus' },
  { id: 'low-quality', label: 'Low quality', text: 'low quality, jpeg artifacts' },
  { id: 'watermark', label: 'Text and watermarks', text: 'text, watermark, signature, logo' },
  { id: 'anatomy', label: 'Bad anatomy', text: 'bad anatomy, extra fingers, extra limbs, deformed hands' },
  { id: 'faces', label: 'Distorted faces', text: 'distorted face, asymmetric eyes' },
  { id: 'cropped', label: 'Cropped framing', text: 'cropped, out of frame' },
  { id: 'oversaturated', label: 'Oversaturated', text: 'oversaturated, overexposed' },
  { id: 'noise', label: 'Grain and noise', text: 'noise, grainy' },
  { id: 'duplicates', label: 'Duplicates', text: 'duplicate, clone, tiling' },
];

/** Template suggestions for the prompt builder; `{subject}` is where the user's idea goes. */
export const PROMPT_TEMPLATES: readonly { label: string; template: string }[] = [
  { label: 'Portrait', template: 'portrait of {subject}, soft window light, 85mm lens, shallow depth of field' },
  { label: 'Landscape', template: '{subject}, wide landscape, golden hour, dramatic clouds, highly detailed' },
  { label: 'Product shot', template: 'studio product photo of {subject}, white background, softbox lighting' },
  { label: 'Concept art', template: 'concept art of {subject}, epic scale, volumetric light, matte painting' },
  { label: 'Isometric', template: 'isometric 3d illustration of {subject}, pastel colours, clean shapes' },
  { label: 'Macro', template: 'macro photograph of {subject}, extreme close-up, fine texture, bokeh' },
];

/** Phrases the builder can append with one click. */
export const PROMPT_MODIFIERS: readonly { group: string; items: readonly string[] }[] = [
  { group: 'Lighting', items: ['golden hour', 'soft light', 'neon lights', 'rim lighting', 'overcast'] },
  { group: 'Camera', items: ['wide angle', 'close-up', "bird's-eye view", 'telephoto', 'long exposure'] },
  { group: 'Mood', items: ['serene', 'moody', 'whimsical', 'dramatic', 'minimal'] },
];

/** Aspect presets: SDXL's trained sizes (about one megapixel, sides in 64 px steps). */
export const ASPECT_PRESETS: readonly { label: string; width: number; height: number }[] = [
  { label: '1:1', width: 1024, height: 1024 },
  { label: '4:3', width: 1152, height: 896 },
  { label: '3:4', width: 896, height: 1152 },
  { label: '3:2', width: 1216, height: 832 },
  { label: '2:3', width: 832, height: 1216 },
  { label: '16:9', width: 1344, height: 768 },
  { label: '9:16', width: 768, height: 1344 },
  { label: '21:9', width: 1536, height: 640 },
];

/** Fill the template with the current prompt (or leave the placeholder for the user to replace). */
export function applyTemplate(template: string, prompt: string): string {
  const subject = prompt.trim();
  return template.replace('{subject}', subject || 'a subject');
}

export function appendModifier(prompt: string, modifier: string): string {
  const trimmed = prompt.trim().replace(/,\s*$/, '');
  if (!trimmed) return modifier;
  const parts = trimmed.split(',').map((part) => part.trim().toLowerCase());
  if (parts.includes(modifier.toLowerCase())) return trimmed;
  return `${trimmed}, ${modifier}`;
}

export function negativePrompt(form: Pick<StudioForm, 'negativeTerms' | 'negativeExtra'>): string {
  const terms = NEGATIVE_TERMS.filter((term) => form.negativeTerms.includes(term.id)).map((t) => t.text);
  const extra = form.negativeExtra.trim();
  return [...terms, ...(extra ? [extra] : [])].join(', ');
}

export function snapSize(value: number, max: number = LIMITS.sizeMax): number {
  if (!Number.isFinite(value)) return LIMITS.sizeMin;
  const snapped = Math.round(value / LIMITS.sizeStep) * LIMITS.sizeStep;
  return Math.min(Math.max(snapped, LIMITS.sizeMin), max);
}

function clamp(value: unknown, min: number, max: number, fallback: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) return fallback;
  return Math.min(Math.max(value, min), max);
}

export function randomSeed(): number {
  const buffer = new Uint32Array(1);
  crypto.getRandomValues(buffer);
  return (buffer[0] ?? 0) % (LIMITS.seedMax + 1);
}

export type FieldErrors = Partial<Record<'prompt' | 'negative' | 'width' | 'height' | 'seed', string>>;

/** What the server would refuse, said before sending (the server checks again). */
export function validate(form: StudioForm): FieldErrors {
  const errors: FieldErrors = {};
  const prompt = form.prompt.trim();
  if (!prompt) errors.prompt = 'Describe the image you want.';
  else if (form.prompt.length > LIMITS.promptMax) {
    errors.prompt = `At most ${LIMITS.promptMax} characters (now ${form.prompt.length}).`;
  }
  if (negativePrompt(form).length > LIMITS.promptMax) {
    errors.negative = `The negative prompt may have at most ${LIMITS.promptMax} characters.`;
  }
  for (const side of ['width', 'height'] as const) {
    const value = form[side];
    if (!Number.isInteger(value) || value < LIMITS.sizeMin || value > LIMITS.sizeMax) {
      errors[side] = `${LIMITS.sizeMin}–${LIMITS.sizeMax} pixels.`;
    } else if (value % LIMITS.sizeStep !== 0) {
      errors[side] = `Use a multiple of ${LIMITS.sizeStep} (nearest: ${snapSize(value)}).`;
    }
  }
  if (form.seedLocked && (!Number.isInteger(form.seed) || form.seed < 0 || form.seed > LIMITS.seedMax)) {
    errors.seed = `A whole number from 0 to ${LIMITS.seedMax}.`;
  }
  return errors;
}

/**
 * One request per image of the batch: every image is its own job with its own place in the queue,
 * progress and preview (the server batches compatible jobs into one engine call anyway).
 * A locked seed gives image i the seed + i, as the API does for a batch.
 */
export function buildRequests(form: StudioForm): JobRequest[] {
  const common = {
    prompt: form.prompt.trim(),
    negative_prompt: negativePrompt(form),
    steps: form.steps,
    guidance_scale: form.guidanceScale,
    batch_size: 1,
    ...(form.stylePreset ? { style_preset: form.stylePreset } : {}),
  };
  const requests: JobRequest[] = [];
  for (let i = 0; i < form.batch; i++) {
    // The last image's seed + i must stay within the API's range too.
    const base = Math.min(form.seed, LIMITS.seedMax - (form.batch - 1));
    const seed = form.seedLocked ? { seed: base + i } : {};
    if (form.sourceImageId) {
      const body: EditBody = { ...common, ...seed, strength: form.strength };
      requests.push({ kind: 'edit', body, sourceImageId: form.sourceImageId });
    } else {
      const body: GenerateBody = { ...common, ...seed, width: form.width, height: form.height };
      requests.push({ kind: 'generate', body });
    }
  }
  return requests;
}

// ------------------------------------------------------------------ persistence (sessionStorage)

export const STORAGE_KEY = 'fimum.studio.form.v1';

/** Read back a stored form, keeping only well-formed values within the limits. */
export function restoreForm(raw: string | null): StudioForm {
  if (!raw) return DEFAULT_FORM;
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch {
    return DEFAULT_FORM;
  }
  if (typeof data !== 'object' || data === null) return DEFAULT_FORM;
  const d = data as Record<string, unknown>;
  const str = (value: unknown, fallback: string) => (typeof value === 'string' ? value : fallback);
  const known = new Set(NEGATIVE_TERMS.map((term) => term.id));
  return {
    prompt: str(d.prompt, DEFAULT_FORM.prompt),
    negativeTerms: Array.isArray(d.negativeTerms)
      ? d.negativeTerms.filter((id): id is string => typeof id === 'string' && known.has(id))
      : DEFAULT_FORM.negativeTerms,
    negativeExtra: str(d.negativeExtra, DEFAULT_FORM.negativeExtra),
    stylePreset: typeof d.stylePreset === 'string' ? d.stylePreset : null,
    steps: Math.round(clamp(d.steps, LIMITS.stepsMin, LIMITS.stepsMax, DEFAULT_FORM.steps)),
    guidanceScale: clamp(d.guidanceScale, LIMITS.guidanceMin, LIMITS.guidanceMax, DEFAULT_FORM.guidanceScale),
    // Sizes as typed (maybe mid-edit, not yet a multiple of 64): validation says what is wrong.
    width: Math.round(clamp(d.width, 0, LIMITS.sizeMax * 2, DEFAULT_FORM.width)),
    height: Math.round(clamp(d.height, 0, LIMITS.sizeMax * 2, DEFAULT_FORM.height)),
    seed: Math.round(clamp(d.seed, 0, LIMITS.seedMax, DEFAULT_FORM.seed)),
    seedLocked: typeof d.seedLocked === 'boolean' ? d.seedLocked : DEFAULT_FORM.seedLocked,
    batch: Math.round(clamp(d.batch, LIMITS.batchMin, LIMITS.batchMax, DEFAULT_FORM.batch)),
    sourceImageId: typeof d.sourceImageId === 'string' ? d.sourceImageId : null,
    strength: clamp(d.strength, 0, 1, DEFAULT_FORM.strength),
  };
}

// ------------------------------------------------------------------ prefill (regenerate, ?from=)

/** Undo a preset's "{prompt}" template, so the form shows what the user typed. */
export function unwrapTemplate(expanded: string, template: string): string | null {
  if (!template.includes('{prompt}')) return null;
  const [before = '', after = ''] = template.split('{prompt}');
  if (expanded.startsWith(before) && expanded.endsWith(after) && expanded.length >= before.length + after.length) {
    return expanded.slice(before.length, expanded.length - after.length);
  }
  return null;
}

/** Split a stored negative prompt back into the assistant's toggles and the free text. */
export function splitNegative(negative: string): Pick<StudioForm, 'negativeTerms' | 'negativeExtra'> {
  let rest = `, ${negative.trim()}, `;
  const terms: string[] = [];
  for (const term of NEGATIVE_TERMS) {
    const needle = `, ${term.text}, `;
    if (rest.includes(needle)) {
      terms.push(term.id);
      rest = rest.replace(needle, ', ');
    }
  }
  const extra = rest
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)
    .join(', ');
  return { negativeTerms: terms, negativeExtra: extra };
}

/**
 * The form that makes this image again: its prompt (the preset's template removed), negative
 * prompt, size, steps, guidance and preset, with its seed locked.
 */
export function formFromImage(image: ImageView, presets: StylePreset[], current: StudioForm): StudioForm {
  const params = image.metadata.parameters ?? {};
  const presetName = params.style_preset ?? null;
  const preset = presets.find((p) => p.name === presetName) ?? null;
  let prompt = params.prompt ?? '';
  let negative = params.negative_prompt ?? '';
  if (preset) {
    prompt = unwrapTemplate(prompt, preset.prompt) ?? prompt;
    if (preset.negative) {
      if (negative === preset.negative) negative = '';
      else if (negative.endsWith(`, ${preset.negative}`)) {
        negative = negative.slice(0, negative.length - preset.negative.length - 2);
      }
    }
  }
  const isEdit = image.mode === 'image-to-image';
  return {
    ...current,
    prompt,
    ...splitNegative(negative),
    stylePreset: preset ? preset.name : null,
    steps: Math.round(clamp(params.steps, LIMITS.stepsMin, LIMITS.stepsMax, current.steps)),
    guidanceScale: clamp(params.guidance_scale, LIMITS.guidanceMin, LIMITS.guidanceMax, current.guidanceScale),
    width: snapSize(params.width ?? image.width),
    height: snapSize(params.height ?? image.height),
    seed: Math.round(clamp(params.seed ?? image.seed, 0, LIMITS.seedMax, current.seed)),
    seedLocked: true,
    batch: 1,
    sourceImageId: isEdit ? current.sourceImageId : null,
    strength: clamp(params.strength, 0, 1, current.strength),
  };
}
