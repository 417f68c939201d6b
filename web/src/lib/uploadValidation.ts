/**
 * Checks an image file before it is uploaded, mirroring the server's own checks
 * (src/fimum_ai/images/uploads.py and requests.py) so users hear about a problem at once,
 * in the same words, instead of after sending 10 MB. The server stays the authority: it checks
 * everything again, and its errors are shown too.
 *
 * Order as on the server: size (413) → type from the magic bytes, never the name (415) →
 * dimensions from the header, without decoding a pixel (400).
 */

export const MAX_UPLOAD_BYTES = 10 * 1024 * 1024;
export const MIN_SIDE = 64;
export const MAX_SIDE = 8192;
export const MAX_PIXELS = 4096 * 4096;
/** Outpainting and upscaling may produce at most 2 × max_resolution (4096) per side. */
export const MAX_OUTPUT_SIDE = 8192;
export const OUTPAINT_MAX_MARGIN = 2048;
export const OUTPAINT_STEP = 8;
export const ACCEPTED_TYPES = ['image/png', 'image/jpeg', 'image/webp'] as const;
/** For `<input type=file accept>`. */
export const ACCEPT_ATTRIBUTE = '.png,.jpg,.jpeg,.webp,image/png,image/jpeg,image/webp';

export type ImageKind = 'png' | 'jpeg' | 'webp';

export interface UploadProblem {
  /** The server's error code for the same problem. */
  code: 'payload_too_large' | 'unsupported_media_type' | 'invalid_image';
  /** The server's `details.reason` where it has one. */
  reason?: 'too_large' | 'too_small' | 'decompression_bomb' | 'truncated' | 'corrupt' | 'empty';
  message: string;
}

export interface AcceptedImage {
  kind: ImageKind;
  width: number;
  height: number;
  bytes: number;
}

export type UploadCheck = { ok: true; image: AcceptedImage } | { ok: false; problem: UploadProblem };

const MiB = 1024 * 1024;

function startsWith(bytes: Uint8Array, signature: readonly number[], at = 0): boolean {
  return bytes.length >= at + signature.length && signature.every((value, i) => bytes[at + i] === value);
}

const ascii = (text: string): number[] => Array.from(text, (c) => c.charCodeAt(0));
const PNG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const JPEG = [0xff, 0xd8, 0xff];

/** The image type from the first bytes, or null for anything but PNG, JPEG and WebP. */
export function sniffImageType(bytes: Uint8Array): ImageKind | null {
  if (startsWith(bytes, PNG)) return 'png';
  if (startsWith(bytes, JPEG)) return 'jpeg';
  if (startsWith(bytes, ascii('RIFF')) && startsWith(bytes, ascii('WEBP'), 8)) return 'webp';
  return null;
}

const OTHER_SIGNATURES: readonly [number[], string][] = [
  [ascii('GIF87a'), 'image/gif'],
  [ascii('GIF89a'), 'image/gif'],
  [ascii('BM'), 'image/bmp'],
  [[0x49, 0x49, 0x2a, 0x00], 'image/tiff'],
  [[0x4d, 0x4d, 0x00, 0x2a], 'image/tiff'],
  [ascii('%PDF'), 'application/pdf'],
  [[0x50, 0x4b, 0x03, 0x04], 'application/zip'],
  [[0x00, 0x00, 0x01, 0x00], 'image/x-icon'],
  [ascii('8BPS'), 'image/vnd.adobe.photoshop'],
];

/** What an unaccepted file looks like, in the server's words (for the 415 message). */
export function describeUnknown(bytes: Uint8Array): string {
  if (bytes.length === 0) return 'empty';
  for (const [signature, mime] of OTHER_SIGNATURES) if (startsWith(bytes, signature)) return mime;
  if (startsWith(bytes, ascii('ftyp'), 4)) return 'image/heif-or-video';
  const head = new TextDecoder('latin1').decode(bytes.subarray(0, 1024)).trimStart().toLowerCase();
  if (head.startsWith('<')) return head.includes('<svg') ? 'image/svg+xml' : 'text/html';
  return 'application/octet-stream';
}

export interface Dimensions {
  width: number;
  height: number;
}

// Header readers: a DataView throws RangeError past the end, which `declaredSize` turns into null
// (a header cut short), so no read needs its own bounds check.

function pngSize(v: DataView): Dimensions | null {
  // Signature (8), IHDR length (4), 'IHDR' (4), width, height (big-endian).
  if (v.getUint32(12) !== 0x49484452) return null;
  return { width: v.getUint32(16), height: v.getUint32(20) };
}

// Start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
const isStartOfFrame = (marker: number): boolean =>
  marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;

function jpegSize(v: DataView): Dimensions | null {
  let at = 2;
  for (;;) {
    if (v.getUint8(at) !== 0xff) return null;
    let marker = v.getUint8(at + 1);
    while (marker === 0xff) {
      at += 1; // fill bytes
      marker = v.getUint8(at + 1);
    }
    at += 2;
    if (marker === 0xd9 || marker === 0xda) return null; // end of image, or a scan before any frame
    if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) continue; // markers without a length
    if (isStartOfFrame(marker)) return { height: v.getUint16(at + 3), width: v.getUint16(at + 5) };
    at += v.getUint16(at);
  }
}

const u24le = (v: DataView, at: number): number => v.getUint16(at, true) | (v.getUint8(at + 2) << 16);

function webpSize(v: DataView): Dimensions | null {
  const chunk = v.getUint32(12); // FourCC, big-endian as text
  if (chunk === 0x56503858 /* VP8X */) return { width: u24le(v, 24) + 1, height: u24le(v, 27) + 1 };
  if (chunk === 0x5650384c /* VP8L */) {
    if (v.getUint8(20) !== 0x2f) return null;
    const bits = v.getUint32(21, true);
    return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
  }
  if (chunk === 0x56503820 /* 'VP8 ' */) {
    if (v.getUint8(23) !== 0x9d || v.getUint8(24) !== 0x01 || v.getUint8(25) !== 0x2a) return null;
    return { width: v.getUint16(26, true) & 0x3fff, height: v.getUint16(28, true) & 0x3fff };
  }
  return null;
}

/** The size the file's header declares (before EXIF rotation, which the checks do not care about). */
export function declaredSize(bytes: Uint8Array, kind: ImageKind): Dimensions | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const read = { png: pngSize, jpeg: jpegSize, webp: webpSize }[kind];
  try {
    return read(view);
  } catch (error) {
    if (error instanceof RangeError) return null;
    throw error;
  }
}

/** The server's dimension rules for an input image; null when they pass. */
export function checkDimensions(width: number, height: number): UploadProblem | null {
  if (width * height > MAX_PIXELS) {
    return {
      code: 'invalid_image',
      reason: 'decompression_bomb',
      message: `${width}×${height} is more than the ${MAX_PIXELS.toLocaleString('en')} pixels allowed (4096×4096).`,
    };
  }
  if (Math.max(width, height) > MAX_SIDE) {
    return {
      code: 'invalid_image',
      reason: 'too_large',
      message: `${width}×${height} has a side longer than ${MAX_SIDE} px.`,
    };
  }
  if (Math.min(width, height) < MIN_SIDE) {
    return {
      code: 'invalid_image',
      reason: 'too_small',
      message: `${width}×${height} has a side shorter than ${MIN_SIDE} px.`,
    };
  }
  return null;
}

function tooLarge(bytes: number): UploadProblem {
  return {
    code: 'payload_too_large',
    message: `The file is ${(bytes / MiB).toFixed(1)} MiB; the limit is ${MAX_UPLOAD_BYTES / MiB} MiB.`,
  };
}

/** Every check on the bytes of a file, in the server's order. */
export function checkImageBytes(bytes: Uint8Array): UploadCheck {
  if (bytes.length > MAX_UPLOAD_BYTES) return { ok: false, problem: tooLarge(bytes.length) };
  const kind = sniffImageType(bytes);
  if (kind === null) {
    const detected = describeUnknown(bytes);
    return {
      ok: false,
      problem:
        detected === 'empty'
          ? { code: 'invalid_image', reason: 'empty', message: 'The file is empty.' }
          : {
              code: 'unsupported_media_type',
              message: `Only PNG, JPEG and WebP images are accepted (this looks like ${detected}).`,
            },
    };
  }
  if (kind === 'webp' && new DataView(bytes.buffer, bytes.byteOffset).getUint32(4, true) + 8 > bytes.length) {
    return { ok: false, problem: { code: 'invalid_image', reason: 'truncated', message: 'The image file is truncated.' } };
  }
  const size = declaredSize(bytes, kind);
  if (size === null) {
    return {
      ok: false,
      problem: {
        code: 'invalid_image',
        reason: 'corrupt',
        message: `The file is not a readable ${kind === 'jpeg' ? 'JPEG' : kind.toUpperCase()} image.`,
      },
    };
  }
  const problem = checkDimensions(size.width, size.height);
  if (problem) return { ok: false, problem };
  return { ok: true, image: { kind, ...size, bytes: bytes.length } };
}


/** Check a picked or dropped file. Reads nothing when the size alone rules it out. */
export async function checkImageFile(file: Blob): Promise<UploadCheck> {
  if (file.size > MAX_UPLOAD_BYTES) return { ok: false, problem: tooLarge(file.size) };
  return checkImageBytes(new Uint8Array(await file.arrayBuffer()));
}

/** Outpaint margins: 0-2048 in steps of 8 (server), rounded to the nearest allowed value. */
export function snapMargin(pixels: number): number {
  if (!Number.isFinite(pixels)) return 0;
  const snapped = Math.round(pixels / OUTPAINT_STEP) * OUTPAINT_STEP;
  return Math.min(OUTPAINT_MAX_MARGIN, Math.max(0, snapped));
}

export interface Margins {
  left: number;
  right: number;
  top: number;
  bottom: number;
}

/** Why an outpaint with these margins would be refused, or null when the server will take it. */
export function checkOutpaint(image: Dimensions, margins: Margins): string | null {
  const values = [margins.left, margins.right, margins.top, margins.bottom];
  if (values.some((v) => !Number.isInteger(v) || v < 0 || v > OUTPAINT_MAX_MARGIN || v % OUTPAINT_STEP !== 0)) {
    return `Each side takes 0–${OUTPAINT_MAX_MARGIN} px in steps of ${OUTPAINT_STEP}.`;
  }
  if (values.every((v) => v === 0)) return 'Extend at least one side.';
  const width = image.width + margins.left + margins.right;
  const height = image.height + margins.top + margins.bottom;
  if (Math.max(width, height) > MAX_OUTPUT_SIDE) {
    return `The extended canvas would be ${width}×${height}; at most ${MAX_OUTPUT_SIDE} px per side.`;
  }
  return null;
}

/** Why upscaling by `scale` would be refused, or null. */
export function checkUpscale(image: Dimensions, scale: 2 | 4): string | null {
  const width = image.width * scale;
  const height = image.height * scale;
  if (Math.max(width, height) > MAX_OUTPUT_SIDE) {
    return `The upscaled image would be ${width}×${height}; at most ${MAX_OUTPUT_SIDE} px per side (use ×2 or a smaller image).`;
  }
  return null;
}
