import { describe, expect, it } from 'vitest';
import type { ImageView, StylePreset } from '../../queue/types';
import {
  appendModifier,
  applyTemplate,
  buildRequests,
  DEFAULT_FORM,
  formFromImage,
  LIMITS,
  negativePrompt,
  restoreForm,
  snapSize,
  splitNegative,
  unwrapTemplate,
  validate,
  type StudioForm,
} from './studioForm';

const form = (overrides: Partial<StudioForm> = {}): StudioForm => ({ ...DEFAULT_FORM, prompt: 'a lighthouse', ...overrides });

const cinematic: StylePreset = {
  name: 'cinematic',
  description: 'A film still.',
  prompt: 'cinematic film still of {prompt}, dramatic lighting',
  negative: 'cartoon, illustration',
  steps: 40,
  guidance_scale: 7,
  scheduler: 'DPMSolverMultistep',
};

describe('buildRequests', () => {
  it('makes one job per image; a locked seed gives image i the seed + i', () => {
    const requests = buildRequests(form({ batch: 3, seed: 100, seedLocked: true, width: 512, height: 768 }));
    expect(requests).toHaveLength(3);
    expect(requests.map((r) => r.body.seed)).toEqual([100, 101, 102]);
    expect(requests[0]).toEqual({
      kind: 'generate',
      body: {
        prompt: 'a lighthouse',
        negative_prompt: 'blurry, out of focus, low quality, jpeg artifacts, text, watermark, signature, logo',
        steps: 30,
        guidance_scale: 7.5,
        batch_size: 1,
        seed: 100,
        width: 512,
        height: 768,
      },
    });
  });

  it('sends no seed when unlocked (the server draws one) and names the style preset', () => {
    const [request] = buildRequests(form({ stylePreset: 'anime' }));
    expect(request?.body).not.toHaveProperty('seed');
    expect(request?.body.style_preset).toBe('anime');
  });

  it('keeps the last seed of a batch inside the API range', () => {
    const requests = buildRequests(form({ batch: 8, seed: LIMITS.seedMax, seedLocked: true }));
    expect(Math.max(...requests.map((r) => r.body.seed ?? 0))).toBe(LIMITS.seedMax);
  });

  it('turns into image-to-image with a start image', () => {
    const [request] = buildRequests(form({ sourceImageId: 'img-1', strength: 0.4 }));
    expect(request).toMatchObject({ kind: 'edit', sourceImageId: 'img-1', body: { strength: 0.4 } });
    expect(request?.body).not.toHaveProperty('width');
  });
});

describe('validate', () => {
  it('accepts the defaults with a prompt', () => {
    expect(validate(form())).toEqual({});
  });

  it('names every field the server would refuse', () => {
    const errors = validate(form({ prompt: '  ', width: 500, height: 1000, seed: -1, seedLocked: true }));
    expect(Object.keys(errors).sort()).toEqual(['height', 'prompt', 'seed', 'width']);
    expect(errors.width).toMatch(/512/);
    expect(errors.height).toBe('Use a multiple of 64 (nearest: 1024).');
    expect(validate(form({ prompt: 'x'.repeat(1001) })).prompt).toMatch(/1000/);
  });
});

describe('prompt builder', () => {
  it('wraps the typed idea in a template and appends modifiers once', () => {
    expect(applyTemplate('portrait of {subject}, soft light', ' a fox ')).toBe('portrait of a fox, soft light');
    expect(applyTemplate('portrait of {subject}', '')).toBe('portrait of a subject');
    expect(appendModifier('a fox,', 'golden hour')).toBe('a fox, golden hour');
    expect(appendModifier('a fox, golden hour', 'Golden hour')).toBe('a fox, golden hour');
    expect(appendModifier('', 'moody')).toBe('moody');
  });

  it('joins the negative toggles and the free text', () => {
    expect(negativePrompt({ negativeTerms: ['noise', 'blurry'], negativeExtra: ' cars ' })).toBe(
      'blurry, out of focus, noise, grainy, cars',
    );
    expect(negativePrompt({ negativeTerms: [], negativeExtra: '' })).toBe('');
  });

  it('snaps sizes to 64 px within the limits', () => {
    expect(snapSize(1000)).toBe(1024);
    expect(snapSize(100)).toBe(512);
    expect(snapSize(9999)).toBe(4096);
    expect(snapSize(Number.NaN)).toBe(512);
  });
});

describe('restoreForm (sessionStorage)', () => {
  it('round-trips a form', () => {
    const original = form({ prompt: 'half typed', batch: 5, seedLocked: true, seed: 7, negativeTerms: ['faces'] });
    expect(restoreForm(JSON.stringify(original))).toEqual(original);
  });

  it('falls back to defaults for junk and clamps out-of-range values', () => {
    expect(restoreForm('{not json')).toEqual(DEFAULT_FORM);
    expect(restoreForm(null)).toEqual(DEFAULT_FORM);
    const restored = restoreForm(JSON.stringify({ prompt: 3, steps: 999, batch: 0, negativeTerms: ['nope', 'faces'] }));
    expect(restored).toMatchObject({ prompt: '', steps: 100, batch: 1, negativeTerms: ['faces'] });
  });
});

describe('formFromImage (regenerate from a stored image)', () => {
  const image: ImageView = {
    id: 'img-1',
    seed: 1234,
    width: 1216,
    height: 832,
    mode: 'text-to-image',
    created_at: '2026-01-01T00:00:00+00:00',
    url: '/api/v1/images/img-1/file',
    thumbnail_url: '/api/v1/images/img-1/file?variant=thumbnail',
    duplicate_of: null,
    metadata: {
      parameters: {
        prompt: 'cinematic film still of a fox in snow, dramatic lighting',
        negative_prompt: 'text, watermark, signature, logo, people, cartoon, illustration',
        steps: 40,
        guidance_scale: 6.5,
        style_preset: 'cinematic',
        seed: 1234,
        width: 1216,
        height: 832,
      },
    },
  };

  it('recovers what the user typed, the toggles, the settings and locks the seed', () => {
    const next = formFromImage(image, [cinematic], form({ batch: 4, prompt: 'old' }));
    expect(next).toMatchObject({
      prompt: 'a fox in snow',
      negativeTerms: ['watermark'],
      negativeExtra: 'people',
      stylePreset: 'cinematic',
      steps: 40,
      guidanceScale: 6.5,
      width: 1216,
      height: 832,
      seed: 1234,
      seedLocked: true,
      batch: 1,
    });
    // Sending it again gives the request that made the image.
    const [request] = buildRequests(next);
    expect(request?.body).toMatchObject({ prompt: 'a fox in snow', seed: 1234, style_preset: 'cinematic' });
  });

  it('keeps the stored prompt when the preset is gone or its template does not match', () => {
    expect(formFromImage(image, [], form()).prompt).toBe(image.metadata.parameters?.prompt);
    expect(unwrapTemplate('something else', cinematic.prompt)).toBeNull();
  });

  it('splits a negative prompt into toggles and free text', () => {
    expect(splitNegative('blurry, out of focus, trees')).toEqual({ negativeTerms: ['blurry'], negativeExtra: 'trees' });
  });
});
