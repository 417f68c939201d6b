// @vitest-environment node
// Pure logic: no DOM needed (and Node's Blob has arrayBuffer(), which jsdom's lacks).
import { describe, expect, it } from 'vitest';
import {
  MAX_UPLOAD_BYTES,
  checkDimensions,
  checkImageBytes,
  checkImageFile,
  checkOutpaint,
  checkUpscale,
  declaredSize,
  describeUnknown,
  snapMargin,
  sniffImageType,
} from './uploadValidation';

// Real files written by Pillow 13 (tiny, solid colour), base64.
const FILES = {
  png_100x64: 'iVBORw0KGgoAAAANSUhEUgAAAGQAAABACAIAAABjvUUjAAAAo0lEQVR4nO3QsQ3AIADAMGDszMz/Z/aFZkKV7AuizGefwTfrdsCfmBWYFZgVmBWYFZgVmBWYFZgVmBWYFZgVmBWYFZgVmBWYFZgVmBWYFZgVmBWYFZgVmBWYFZgVmBWYFZgVmBWYFZgVmBWYFZgVmBWYFZgVmBWYFZgVmBWYFZgVmBWYFZgVmBWYFZgVmBWYFZgVmBWYFZgVmBWYFZgVmBWYFby/0AC8Ae/E7gAAAABJRU5ErkJggg==',
  jpeg_progressive_90x64: '/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERXRTc4UG1RV19iZ2hnPk1xeXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2P/wgARCABAAFoDASIAAhEBAxEB/8QAFQABAQAAAAAAAAAAAAAAAAAAAAT/xAAWAQEBAQAAAAAAAAAAAAAAAAAAAwX/2gAMAwEAAhADEAAAAYRHVAAAAAAAAAAAAAAAAAAAAAAA/8QAFBABAAAAAAAAAAAAAAAAAAAAYP/aAAgBAQABBQJB/8QAFBEBAAAAAAAAAAAAAAAAAAAAQP/aAAgBAwEBPwFH/8QAFBEBAAAAAAAAAAAAAAAAAAAAQP/aAAgBAgEBPwFH/8QAFBABAAAAAAAAAAAAAAAAAAAAYP/aAAgBAQAGPwJB/8QAFBABAAAAAAAAAAAAAAAAAAAAYP/aAAgBAQABPyFB/9oADAMBAAIAAwAAABDzzzzzzzzzzzzzzzzzzzzzzzz/xAAUEQEAAAAAAAAAAAAAAAAAAABA/9oACAEDAQE/EEf/xAAUEQEAAAAAAAAAAAAAAAAAAABA/9oACAECAQE/EEf/xAAUEAEAAAAAAAAAAAAAAAAAAABg/9oACAEBAAE/EEH/2Q==',
  webp_lossy_120x64: 'UklGRkIAAABXRUJQVlA4IDYAAABwBACdASp4AEAAPtFosFKoJiSioQgBABoJaQAACLUSrzW19OnTp06dOnTfAAD+82IAAAAAAAA=',
  webp_lossless_65x70: 'UklGRiYAAABXRUJQVlA4TBoAAAAvQEARAAdQgVQIIAAKmv7HABLC//lSRP9TOg==',
  webp_vp8x_300x64: 'UklGRoIAAABXRUJQVlA4WAoAAAAQAAAAKwEAPwAAQUxQSBAAAAABB1CyiAgAKNL//xLR/9QvVlA4IEwAAAAQBwCdASosAUAAPtFosFMoJiSioGgBABoJaW7hdUAAO6HVUmyYh1VJsmIdVSbJiHVUmyYh1VJsmIdVSbJiHVUmIAD+/xO4AAAAAAAA',
  png_63x64: 'iVBORw0KGgoAAAANSUhEUgAAAD8AAABACAIAAAAiSTicAAAAI0lEQVR4nO3BgQAAAADDoPlTH+ECVQEAAAAAAAAAAAAAAM8AL4AAAXwtWNAAAAAASUVORK5CYII=',
  jpeg_64x200: '/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAFA3PEY8MlBGQUZaVVBfeMiCeG5uePWvuZHI////////////////////////////////////////////////////2wBDAVVaWnhpeOuCguv/////////////////////////////////////////////////////////////////////////wAARCADIAEADASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwCKiiipOgKKKKACiiigAooooAKKKKACiiigAooooAKKKKACiiigAooooAKKKKACiiigAooooAKKKKACiiigAooooAKKKKACiiigAooooAKKKKACiiigAooooAKKKKACiiigAooooAKKKKACiiigAooooAKKKKACiiigAooooAKKKKACiiigAooooAKKKKACiiigAooooAKKKKACiiigAooooAKKKKACiiigAooooAKKKKACiiigAooooAKKKKACiiigAooooAKKKKACiiigAooooA//2Q==',
} as const;

function bytesOf(name: keyof typeof FILES): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(FILES[name]), (c) => c.charCodeAt(0));
}

const ascii = (text: string): Uint8Array => Uint8Array.from(text, (c) => c.charCodeAt(0));

/** A PNG whose IHDR declares `width`×`height`; no pixel data (the header is all the check reads). */
function pngHeader(width: number, height: number): Uint8Array {
  const bytes = new Uint8Array(33);
  bytes.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13], 0);
  bytes.set(ascii('IHDR'), 12);
  const view = new DataView(bytes.buffer);
  view.setUint32(16, width);
  view.setUint32(20, height);
  return bytes;
}

/** `jpeg` with an APP1 segment of `size` bytes inserted after SOI, as a camera's EXIF block is. */
function withApp1(jpeg: Uint8Array, size: number): Uint8Array {
  const segment = new Uint8Array(2 + size);
  segment.set([0xff, 0xe1, (size >> 8) & 0xff, size & 0xff]);
  const out = new Uint8Array(jpeg.length + segment.length);
  out.set(jpeg.subarray(0, 2));
  out.set(segment, 2);
  out.set(jpeg.subarray(2), 2 + segment.length);
  return out;
}

describe('sniffImageType', () => {
  it('knows PNG, JPEG and WebP by their bytes', () => {
    expect(sniffImageType(bytesOf('png_100x64'))).toBe('png');
    expect(sniffImageType(bytesOf('jpeg_64x200'))).toBe('jpeg');
    expect(sniffImageType(bytesOf('webp_lossy_120x64'))).toBe('webp');
  });

  it('refuses everything else and says what it looks like', () => {
    for (const [bytes, mime] of [
      [ascii('GIF89a....'), 'image/gif'],
      [ascii('BM........'), 'image/bmp'],
      [ascii('%PDF-1.7'), 'application/pdf'],
      [ascii("  <svg xmlns='http://www.w3.org/2000/svg'>"), 'image/svg+xml'],
      [ascii('<!doctype html><p>hi'), 'text/html'],
      [Uint8Array.of(0, 0, 0, 0x18, ...ascii('ftypheic')), 'image/heif-or-video'],
      [Uint8Array.of(1, 2, 3, 4, 5), 'application/octet-stream'],
      [new Uint8Array(0), 'empty'],
    ] as const) {
      expect(sniffImageType(bytes)).toBeNull();
      expect(describeUnknown(bytes)).toBe(mime);
    }
  });
});

describe('declaredSize', () => {
  it("reads every format's header", () => {
    expect(declaredSize(bytesOf('png_100x64'), 'png')).toEqual({ width: 100, height: 64 });
    expect(declaredSize(bytesOf('jpeg_64x200'), 'jpeg')).toEqual({ width: 64, height: 200 });
    expect(declaredSize(bytesOf('jpeg_progressive_90x64'), 'jpeg')).toEqual({ width: 90, height: 64 });
    expect(declaredSize(bytesOf('webp_lossy_120x64'), 'webp')).toEqual({ width: 120, height: 64 });
    expect(declaredSize(bytesOf('webp_lossless_65x70'), 'webp')).toEqual({ width: 65, height: 70 });
    expect(declaredSize(bytesOf('webp_vp8x_300x64'), 'webp')).toEqual({ width: 300, height: 64 });
  });

  it("finds a JPEG's frame after a large metadata segment", () => {
    const jpeg = withApp1(bytesOf('jpeg_64x200'), 40_000);
    expect(declaredSize(jpeg, 'jpeg')).toEqual({ width: 64, height: 200 });
  });

  it('gives null for a header cut short', () => {
    expect(declaredSize(bytesOf('png_100x64').subarray(0, 20), 'png')).toBeNull();
    expect(declaredSize(bytesOf('jpeg_64x200').subarray(0, 100), 'jpeg')).toBeNull();
    expect(declaredSize(bytesOf('webp_lossy_120x64').subarray(0, 24), 'webp')).toBeNull();
  });
});

describe("checkDimensions (the server's rules)", () => {
  it('accepts 64 to 8192 px per side within 4096×4096 pixels', () => {
    expect(checkDimensions(64, 64)).toBeNull();
    expect(checkDimensions(4096, 4096)).toBeNull();
    expect(checkDimensions(8192, 2048)).toBeNull();
  });

  it('refuses too many pixels, too long a side, too short a side', () => {
    expect(checkDimensions(4097, 4096)?.reason).toBe('decompression_bomb');
    expect(checkDimensions(8193, 64)?.reason).toBe('too_large');
    expect(checkDimensions(63, 500)?.reason).toBe('too_small');
    expect(checkDimensions(63, 500)?.message).toBe('63×500 has a side shorter than 64 px.');
  });
});

describe('checkImageBytes', () => {
  it('accepts real images with their size', () => {
    const check = checkImageBytes(bytesOf('webp_vp8x_300x64'));
    expect(check).toEqual({ ok: true, image: { kind: 'webp', width: 300, height: 64, bytes: 138 } });
  });

  it("maps each problem to the server's code", () => {
    const tooBig = checkImageBytes(new Uint8Array(MAX_UPLOAD_BYTES + 1));
    expect(tooBig.ok === false && tooBig.problem.code).toBe('payload_too_large');
    const gif = checkImageBytes(ascii("GIF89a\x01\x00\x01\x00"));
    expect(gif.ok === false && gif.problem).toEqual({
      code: 'unsupported_media_type',
      message: 'Only PNG, JPEG and WebP images are accepted (this looks like image/gif).',
    });
    const small = checkImageBytes(bytesOf('png_63x64'));
    expect(small.ok === false && small.problem.reason).toBe('too_small');
    const bomb = checkImageBytes(pngHeader(20_000, 20_000));
    expect(bomb.ok === false && bomb.problem.reason).toBe('decompression_bomb');
    const cutWebp = checkImageBytes(bytesOf('webp_lossy_120x64').subarray(0, 40));
    expect(cutWebp.ok === false && cutWebp.problem.reason).toBe('truncated');
    const noFrame = checkImageBytes(Uint8Array.of(0xff, 0xd8, 0xff, 0xd9));
    expect(noFrame.ok === false && noFrame.problem.reason).toBe('corrupt');
    const empty = checkImageBytes(new Uint8Array(0));
    expect(empty.ok === false && empty.problem.reason).toBe('empty');
  });
});

describe('checkImageFile', () => {
  it("checks a Blob's bytes", async () => {
    const check = await checkImageFile(new Blob([bytesOf('jpeg_64x200')]));
    expect(check.ok && check.image).toMatchObject({ kind: 'jpeg', width: 64, height: 200 });
  });

  it('refuses an oversized file from its size alone', async () => {
    let read = false;
    const huge = {
      size: MAX_UPLOAD_BYTES * 3,
      arrayBuffer: () => {
        read = true;
        return Promise.resolve(new ArrayBuffer(0));
      },
    } as unknown as Blob;
    const check = await checkImageFile(huge);
    expect(check.ok === false && check.problem.message).toBe('The file is 30.0 MiB; the limit is 10 MiB.');
    expect(read).toBe(false);
  });
});

describe('outpaint and upscale limits', () => {
  it('snaps margins to 0–2048 in steps of 8', () => {
    expect(snapMargin(13)).toBe(16);
    expect(snapMargin(11)).toBe(8);
    expect(snapMargin(-40)).toBe(0);
    expect(snapMargin(5000)).toBe(2048);
    expect(snapMargin(Number.NaN)).toBe(0);
  });

  it('refuses what the server would', () => {
    const image = { width: 512, height: 512 };
    expect(checkOutpaint(image, { left: 0, right: 0, top: 0, bottom: 0 })).toBe('Extend at least one side.');
    expect(checkOutpaint(image, { left: 12, right: 0, top: 0, bottom: 0 })).toMatch(/steps of 8/);
    expect(checkOutpaint(image, { left: 64, right: 0, top: 0, bottom: 128 })).toBeNull();
    expect(checkOutpaint({ width: 7000, height: 512 }, { left: 1024, right: 1024, top: 0, bottom: 0 })).toMatch(
      /9048×512/,
    );
    expect(checkUpscale(image, 4)).toBeNull();
    expect(checkUpscale({ width: 3000, height: 100 }, 4)).toMatch(/12000×400/);
    expect(checkUpscale({ width: 3000, height: 100 }, 2)).toBeNull();
  });
});
