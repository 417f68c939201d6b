import { formatDateTime } from '../../components/format';
import type { GalleryImage } from './types';

/**
 * Turns an image's metadata record into what the detail view shows. The record is the engine's
 * (`ImageMetadata`: mode, seed, size, `parameters` as run, scheduler, timings, model, device...),
 * stored as JSON, so every field is read with a type check: an older or partial record shows the
 * rows it has and never crashes the page.
 */

export interface MetadataRow {
  label: string;
  value: string;
}

export interface ImageDescription {
  prompt: string;
  negativePrompt: string;
  rows: MetadataRow[];
}

function record(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

function text(value: unknown): string | null {
  return typeof value === 'string' && value.trim() ? value : null;
}

function number(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

const numberFormat = new Intl.NumberFormat('en', { maximumFractionDigits: 2 });

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** Generation times: often under a second on a GPU, so milliseconds count. */
export function formatSeconds(seconds: number): string {
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${numberFormat.format(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${Math.round(seconds - minutes * 60)} s`;
}

export function formatDate(iso: string): string {
  return Number.isNaN(Date.parse(iso)) ? iso : formatDateTime(iso);
}

const MODE_LABELS: Record<string, string> = {
  'text-to-image': 'Text to image',
  'image-to-image': 'Image to image',
  inpaint: 'Inpaint',
  outpaint: 'Outpaint',
  upscale: 'Upscale',
};

export function modeLabel(mode: string): string {
  return MODE_LABELS[mode] ?? mode;
}

export function describeImage(image: GalleryImage): ImageDescription {
  const meta = record(image.metadata);
  const params = record(meta.parameters);
  const rows: MetadataRow[] = [];
  const add = (label: string, value: string | null) => {
    if (value !== null) rows.push({ label, value });
  };
  const numeric = (value: unknown) => {
    const n = number(value);
    return n === null ? null : numberFormat.format(n);
  };

  add('Mode', modeLabel(text(meta.mode) ?? image.mode));
  add('Seed', String(number(meta.seed) ?? image.seed));
  add('Steps', numeric(params.steps));
  add('Guidance (CFG)', numeric(params.guidance_scale));
  add('Strength', numeric(params.strength));
  add('Scheduler', text(meta.scheduler) ?? text(params.scheduler));
  add('Size', `${number(meta.width) ?? image.width} × ${number(meta.height) ?? image.height} px`);
  add('Style preset', text(params.style_preset));
  if (typeof params.refine === 'boolean') add('Refiner pass', params.refine ? 'Yes' : 'No');
  if (number(params.scale) !== null) add('Upscale factor', `×${number(params.scale)}`);
  const model = text(meta.model_name);
  const version = text(meta.model_version);
  add('Model', model && version ? `${model} (${version.slice(0, 12)})` : model);
  add('Refiner', text(meta.refiner_version)?.slice(0, 12) ?? null);
  if (meta.demo_model === true) add('Demo model', 'Yes: random weights, the image is noise');
  const seconds = number(meta.generation_time_s);
  add('Generation time', seconds === null ? null : formatSeconds(seconds));
  const device = text(meta.device);
  const precision = text(meta.precision);
  add('Device', device && precision ? `${device}, ${precision}` : device);
  const vram = number(meta.peak_vram_bytes);
  add('Peak GPU memory', vram === null ? null : formatBytes(vram));
  const rss = number(meta.peak_rss_bytes);
  add('Peak process memory', rss === null ? null : formatBytes(rss));
  add('Created', formatDate(text(meta.created_at) ?? image.created_at));
  add('Duplicate of', image.duplicate_of);

  return {
    prompt: text(params.prompt) ?? '',
    negativePrompt: text(params.negative_prompt) ?? '',
    rows,
  };
}

/** The accessible name and alt text of a thumbnail: what was asked for, or a neutral fallback. */
export function imageLabel(image: GalleryImage): string {
  const prompt = text(record(record(image.metadata).parameters).prompt);
  const what = prompt ? (prompt.length > 120 ? `${prompt.slice(0, 117).trimEnd()}…` : prompt) : 'Untitled image';
  return what;
}
