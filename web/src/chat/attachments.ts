/** Chat uploads: checked in the browser before sending (the server checks again: type by content). */
import { api } from '../api/client';

export const MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024;
export const MAX_ATTACHMENTS = 8;

const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/webp']);
const DOCUMENT_TYPES = new Set([
  'application/pdf',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  'text/plain',
  'text/markdown',
  'text/x-markdown',
]);
const EXTENSIONS = new Set(['png', 'jpg', 'jpeg', 'webp', 'pdf', 'docx', 'txt', 'md', 'markdown']);

export const ACCEPT = '.png,.jpg,.jpeg,.webp,.pdf,.docx,.txt,.md,image/png,image/jpeg,image/webp,application/pdf';

export interface Uploaded {
  id: string;
  kind: 'image' | 'document';
  filename: string;
  media_type: string;
  size_bytes: number;
  chars: number | null;
}

function megabytes(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/** Why this file cannot be attached, or null when it can. */
export function attachmentProblem(file: { name: string; size: number; type: string }): string | null {
  const extension = file.name.includes('.') ? file.name.slice(file.name.lastIndexOf('.') + 1).toLowerCase() : '';
  if (!IMAGE_TYPES.has(file.type) && !DOCUMENT_TYPES.has(file.type) && !EXTENSIONS.has(extension)) {
    return `${file.name}: not a supported file. Attach PNG, JPEG or WebP images, or PDF, DOCX, TXT or Markdown documents.`;
  }
  if (file.size > MAX_ATTACHMENT_BYTES) {
    return `${file.name} is ${megabytes(file.size)}; the limit is 10 MB.`;
  }
  if (file.size === 0) return `${file.name} is empty.`;
  return null;
}

export function isImageFile(file: { name: string; type: string }): boolean {
  return IMAGE_TYPES.has(file.type) || /\.(png|jpe?g|webp)$/i.test(file.name);
}

export function uploadAttachment(file: File, signal?: AbortSignal): Promise<Uploaded> {
  const form = new FormData();
  form.append('file', file, file.name);
  return api<Uploaded>('/api/v1/chat/attachments', { body: form, signal });
}
