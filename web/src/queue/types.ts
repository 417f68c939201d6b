// Shapes of the image API (src/fimum_ai/images/routes.py) that the studio and the queue use.

export type JobStatus = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';
export type JobKind = 'generate' | 'edit' | 'outpaint' | 'upscale';

export interface JobView {
  id: string;
  status: JobStatus;
  kind: JobKind;
  batch_size: number;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  position: number | null;
  url: string;
  websocket_url: string;
  image_ids: string[];
  error?: { code: string; message: string } | null;
}

export interface JobList {
  items: JobView[];
  next_cursor: null;
}

interface EventBase {
  job_id: string;
  at?: number;
}

/** Messages of GET /api/v1/image/jobs/{id}/events (a WebSocket). */
export type JobEventMessage =
  | (EventBase & { type: 'queued'; position: number | null })
  | (EventBase & { type: 'started' })
  | (EventBase & {
      type: 'progress';
      step: number;
      total: number;
      stage?: string;
      eta_s?: number;
      elapsed_s?: number;
      /** A small JPEG decoded cheaply from the latents, base64 (every few steps). */
      preview?: string;
    })
  | (EventBase & { type: 'completed'; images: string[]; cached?: boolean })
  | (EventBase & { type: 'failed'; code?: string; message?: string })
  | (EventBase & { type: 'cancelled' });

/** The body of POST /api/v1/image/generate (GenerateRequest). */
export interface GenerateBody {
  prompt: string;
  negative_prompt: string;
  width: number;
  height: number;
  steps: number;
  guidance_scale: number;
  seed?: number;
  batch_size: number;
  style_preset?: string;
}

/** The fields of POST /api/v1/image/edit (image-to-image) besides the image itself. */
export interface EditBody {
  prompt: string;
  negative_prompt: string;
  steps: number;
  guidance_scale: number;
  seed?: number;
  batch_size: number;
  style_preset?: string;
  strength: number;
}

/** What a queue entry was made from: enough to send it again (regenerate). */
export type JobRequest =
  | { kind: 'generate'; body: GenerateBody }
  | { kind: 'edit'; body: EditBody; sourceImageId: string };

export interface ImageView {
  id: string;
  seed: number;
  width: number;
  height: number;
  mode: string;
  created_at: string;
  url: string;
  thumbnail_url: string;
  metadata: ImageMetadata;
  duplicate_of: string | null;
}

export interface ImageMetadata {
  mode?: string;
  seed?: number;
  width?: number;
  height?: number;
  parameters?: {
    prompt?: string;
    negative_prompt?: string;
    steps?: number;
    guidance_scale?: number;
    scheduler?: string;
    seed?: number;
    batch_size?: number;
    style_preset?: string | null;
    width?: number;
    height?: number;
    strength?: number;
    batch_index?: number;
  };
  model_name?: string;
  demo_model?: boolean;
  [key: string]: unknown;
}

export interface StylePreset {
  name: string;
  description: string;
  prompt: string;
  negative: string;
  steps: number | null;
  guidance_scale: number | null;
  scheduler: string | null;
}

export interface ImageModels {
  installed: boolean;
  demo: boolean;
  base: string | null;
  refiner: string | null;
  upscaler: string | null;
  loaded: boolean;
}
