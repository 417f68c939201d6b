import { afterEach, describe, expect, it } from 'vitest';
import {
  appendPage,
  clearGallery,
  neighbours,
  readGallery,
  removeFromSnapshot,
  removeImage,
  saveGallery,
} from './galleryStore';
import { describeImage, formatBytes, formatSeconds, imageLabel } from './metadata';
import type { GalleryImage } from './types';

function image(id: string, metadata: Record<string, unknown> = {}): GalleryImage {
  return {
    id,
    seed: 7,
    width: 1024,
    height: 768,
    mode: 'text-to-image',
    created_at: '2026-01-02T03:04:05+00:00',
    url: `/api/v1/images/${id}/file`,
    thumbnail_url: `/api/v1/images/${id}/file?variant=thumbnail`,
    metadata,
    duplicate_of: null,
  };
}

afterEach(() => clearGallery());

describe('gallery pages', () => {
  it('appends a page without repeating images already listed', () => {
    const merged = appendPage([image('a'), image('b')], [image('b'), image('c')]);
    expect(merged.map((i) => i.id)).toEqual(['a', 'b', 'c']);
  });

  it('moves the cursor when the image it points at is deleted', () => {
    const state = { items: [image('a'), image('b'), image('c')], nextCursor: 'c' };
    expect(removeImage(state, 'c')).toEqual({ items: [image('a'), image('b')], nextCursor: 'b' });
    expect(removeImage(state, 'a').nextCursor).toBe('c');
    expect(removeImage({ items: [image('a')], nextCursor: 'a' }, 'a')).toEqual({ items: [], nextCursor: null });
  });

  it('keeps the list per user and updates it after a delete elsewhere', () => {
    saveGallery({ owner: 'u1', items: [image('a'), image('b'), image('c')], nextCursor: null, loaded: true, scrollY: 40 });
    expect(readGallery('u2')).toBeNull();
    expect(neighbours('b')).toEqual({ previous: image('a'), next: image('c') });
    removeFromSnapshot('b');
    expect(readGallery('u1')?.items.map((i) => i.id)).toEqual(['a', 'c']);
    expect(neighbours('a')).toEqual({ previous: null, next: image('c') });
    expect(neighbours('zzz')).toEqual({ previous: null, next: null });
  });

  it('forgets the kept list when deleting its only item leaves no cursor to continue from', () => {
    saveGallery({ owner: 'u1', items: [image('a')], nextCursor: 'a', loaded: true, scrollY: 0 });
    removeFromSnapshot('a');
    expect(readGallery('u1')).toBeNull();
  });
});

describe('describeImage', () => {
  it('shows every parameter of a full engine record', () => {
    const full = image('x', {
      mode: 'inpaint',
      seed: 42,
      width: 512,
      height: 512,
      parameters: {
        prompt: 'a red <b>door</b>',
        negative_prompt: 'blurry',
        steps: 30,
        guidance_scale: 6.5,
        strength: 0.75,
        style_preset: 'photorealistic',
        refine: false,
      },
      scheduler: 'EulerDiscrete',
      generation_time_s: 12.345,
      model_name: 'stable-diffusion-xl-base-1.0',
      model_version: 'sha256:0123456789abcdef',
      device: 'cuda:0',
      precision: 'fp16',
      peak_vram_bytes: 8 * 1024 ** 3,
      demo_model: false,
      created_at: '2026-01-02T03:04:05+00:00',
    });
    const { prompt, negativePrompt, rows } = describeImage(full);
    expect(prompt).toBe('a red <b>door</b>');
    expect(negativePrompt).toBe('blurry');
    const byLabel = Object.fromEntries(rows.map((row) => [row.label, row.value]));
    expect(byLabel).toMatchObject({
      Mode: 'Inpaint',
      Seed: '42',
      Steps: '30',
      'Guidance (CFG)': '6.5',
      Strength: '0.75',
      Scheduler: 'EulerDiscrete',
      Size: '512 × 512 px',
      'Style preset': 'photorealistic',
      'Refiner pass': 'No',
      Model: 'stable-diffusion-xl-base-1.0 (sha256:01234)',
      'Generation time': '12.35 s',
      Device: 'cuda:0, fp16',
      'Peak GPU memory': '8.0 GiB',
    });
    expect(byLabel['Demo model']).toBeUndefined();
  });

  it('falls back to the row fields when the record is partial or malformed', () => {
    const { prompt, rows } = describeImage(image('y', { parameters: 'not an object', steps: 'ten' }));
    expect(prompt).toBe('');
    const labels = rows.map((row) => row.label);
    expect(labels).toEqual(['Mode', 'Seed', 'Size', 'Created']);
    expect(rows.find((row) => row.label === 'Size')?.value).toBe('1024 × 768 px');
  });

  it('labels thumbnails by their prompt, shortened, or neutrally', () => {
    expect(imageLabel(image('z', { parameters: { prompt: 'a cat' } }))).toBe('a cat');
    expect(imageLabel(image('z', { parameters: { prompt: 'x'.repeat(200) } }))).toHaveLength(118);
    expect(imageLabel(image('z'))).toBe('Untitled image');
  });

  it('formats sizes and durations', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatSeconds(0.25)).toBe('250 ms');
    expect(formatSeconds(75)).toBe('1 min 15 s');
  });
});
