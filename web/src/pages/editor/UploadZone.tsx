import { useId, useRef, useState, type DragEvent } from 'react';
import { Button } from '../../components/Button';
import { Alert } from '../../components/ErrorMessage';
import { ACCEPT_ATTRIBUTE, MAX_PIXELS, MAX_SIDE, MAX_UPLOAD_BYTES, MIN_SIDE, checkImageFile, type UploadProblem } from '../../lib/uploadValidation';

export interface PickedImage {
  blob: Blob;
  name: string;
  url: string;
  width: number;
  height: number;
}

/** The image's size as the browser shows it: EXIF orientation applied, as the server does too. */
async function decodedSize(url: string): Promise<{ width: number; height: number }> {
  const image = new Image();
  image.src = url;
  await image.decode();
  return { width: image.naturalWidth, height: image.naturalHeight };
}

const TITLES: Record<UploadProblem['code'], string> = {
  payload_too_large: 'The file is too large.',
  unsupported_media_type: 'This file type is not supported.',
  invalid_image: 'This image cannot be used.',
};

/** Drag-and-drop or picker upload, checked here before anything is sent. */
export function UploadZone({ onPicked, compact = false }: { onPicked: (image: PickedImage) => void; compact?: boolean }) {
  const input = useRef<HTMLInputElement>(null);
  const [problem, setProblem] = useState<UploadProblem | null>(null);
  const [over, setOver] = useState(false);
  const [checking, setChecking] = useState(false);
  const hintId = useId();

  const take = async (file: File | undefined) => {
    if (!file) return;
    setChecking(true);
    setProblem(null);
    try {
      const check = await checkImageFile(file);
      if (!check.ok) {
        setProblem(check.problem);
        return;
      }
      const url = URL.createObjectURL(file);
      try {
        const size = await decodedSize(url);
        onPicked({ blob: file, name: file.name, url, ...size });
      } catch {
        URL.revokeObjectURL(url);
        setProblem({ code: 'invalid_image', reason: 'corrupt', message: 'The image data is corrupt or unreadable.' });
      }
    } finally {
      setChecking(false);
      if (input.current) input.current.value = ''; // picking the same file again still fires a change
    }
  };

  const onDrop = (event: DragEvent<HTMLDivElement>) => {
    event.preventDefault();
    setOver(false);
    void take(event.dataTransfer.files[0]);
  };

  return (
    <div className={compact ? 'upload upload-compact' : 'upload'}>
      {/* A drop target for mouse users; the button inside is the keyboard and touch path. */}
      <div
        className={`dropzone${over ? ' dropzone-over' : ''}`}
        onDragEnter={(event) => {
          event.preventDefault();
          setOver(true);
        }}
        onDragOver={(event) => event.preventDefault()}
        onDragLeave={() => setOver(false)}
        onDrop={onDrop}
        data-testid="dropzone"
      >
        {!compact && <p className="dropzone-title">Drop an image here</p>}
        <Button variant={compact ? 'secondary' : 'primary'} busy={checking} onClick={() => input.current?.click()} aria-describedby={hintId}>
          {compact ? 'Choose another image…' : 'Choose an image…'}
        </Button>
        <input
          ref={input}
          type="file"
          accept={ACCEPT_ATTRIBUTE}
          hidden
          onChange={(event) => void take(event.target.files?.[0])}
          data-testid="image-file-input"
        />
        <p id={hintId} className="field-hint">
          PNG, JPEG or WebP, up to {MAX_UPLOAD_BYTES / 1024 / 1024} MiB, {MIN_SIDE}–{MAX_SIDE} px per side and at most{' '}
          {(MAX_PIXELS / 1e6).toFixed(1)} megapixels.
        </p>
      </div>
      {problem && (
        <Alert tone="error" title={TITLES[problem.code]}>
          <p>{problem.message}</p>
        </Alert>
      )}
    </div>
  );
}
