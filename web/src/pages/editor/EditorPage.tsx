import { useCallback, useEffect, useId, useRef, useState, type FormEvent } from 'react';
import { Link, useSearchParams } from 'react-router';
import { api } from '../../api/client';
import { Button } from '../../components/Button';
import { Alert, ErrorMessage } from '../../components/ErrorMessage';
import { RangeField, TextAreaField } from '../../components/Field';
import { PageHeader } from '../../components/PageHeader';
import { Spinner } from '../../components/Spinner';
import { checkOutpaint, checkUpscale, type Margins } from '../../lib/uploadValidation';
import type { ImageView } from '../../queue/types';
import { fetchAuthorized } from '../../api/fetchAuthorized';
import { CompareSlider } from './CompareSlider';
import { EditorCanvas, type EditMode } from './EditorCanvas';
import { JobProgress } from './JobProgress';
import { MaskTools } from './MaskTools';
import { OutpaintFields } from './OutpaintFields';
import { UploadZone, type PickedImage } from './UploadZone';
import { useEditJob, type EditKind } from './useEditJob';
import { useMask, type Tool } from './useMask';
import './editor.css';

interface Source extends PickedImage {
  /** Set when the image came from the gallery (or is a previous result). */
  imageId?: string;
}

interface Result {
  id: string;
  blob: Blob;
  url: string;
  width: number;
  height: number;
  /** The source and mode it was made from (for the comparison's geometry). */
  source: Source;
  mode: EditMode;
  margins: Margins;
}

const MODES: { value: EditMode; label: string; hint: string }[] = [
  { value: 'inpaint', label: 'Inpaint', hint: 'Repaint the masked area; everything else stays exactly as it is.' },
  { value: 'image-to-image', label: 'Image to image', hint: 'Redraw the whole image guided by the prompt.' },
  { value: 'outpaint', label: 'Outpaint', hint: 'Extend the canvas and fill the new area.' },
  { value: 'upscale', label: 'Upscale', hint: 'Two or four times the width and height, with added detail.' },
];

const KIND: Record<EditMode, EditKind> = { inpaint: 'edit', 'image-to-image': 'edit', outpaint: 'outpaint', upscale: 'upscale' };
const ACTION: Record<EditMode, string> = { inpaint: 'Inpaint', 'image-to-image': 'Transform', outpaint: 'Outpaint', upscale: 'Upscale' };

function defaultBrush(width: number, height: number): number {
  return Math.max(4, Math.round(Math.min(width, height) / 16));
}

async function loadBlob(blob: Blob): Promise<{ blob: Blob; url: string; width: number; height: number }> {
  const url = URL.createObjectURL(blob);
  const image = new Image();
  image.src = url;
  try {
    await image.decode();
  } catch (error) {
    URL.revokeObjectURL(url);
    throw error;
  }
  return { blob, url, width: image.naturalWidth, height: image.naturalHeight };
}

/** A stored image (gallery or result) as an editor source. */
async function storedImage(id: string): Promise<{ source: Source; view: ImageView }> {
  const view = await api<ImageView>(`/api/v1/images/${encodeURIComponent(id)}`);
  const loaded = await loadBlob(await (await fetchAuthorized(view.url)).blob());
  return { source: { name: `${id}.png`, imageId: id, ...loaded }, view };
}

export default function EditorPage() {
  const [params, setParams] = useSearchParams();
  const galleryId = params.get('image');
  const [source, setSource] = useState<Source | null>(null);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);
  const [mode, setMode] = useState<EditMode>('inpaint');
  const [tool, setTool] = useState<Tool>('brush');
  const [brushSize, setBrushSize] = useState(32);
  const [prompt, setPrompt] = useState('');
  const [negative, setNegative] = useState('');
  const [strength, setStrength] = useState<Record<'inpaint' | 'image-to-image', number>>({ inpaint: 1, 'image-to-image': 0.6 });
  const [steps, setSteps] = useState(30);
  const [guidance, setGuidance] = useState(7.5);
  const [seed, setSeed] = useState('');
  const [margins, setMargins] = useState<Margins>({ left: 0, right: 256, top: 0, bottom: 0 });
  const [scale, setScale] = useState<2 | 4>(4);
  const [noise, setNoise] = useState(20);
  const [formError, setFormError] = useState<string | null>(null);
  const [result, setResult] = useState<Result | null>(null);
  const [resultError, setResultError] = useState<unknown>(null);
  const mask = useMask();
  const job = useEditJob();
  const formErrorId = useId();
  const urls = useRef(new Set<string>());
  const resultRef = useRef<HTMLElement>(null);

  const track = (url: string) => {
    urls.current.add(url);
    return url;
  };
  useEffect(() => {
    const owned = urls.current;
    return () => owned.forEach((url) => URL.revokeObjectURL(url));
  }, []);

  const keepMask = useRef(false);
  const openSource = useCallback(
    (next: Source, options: { keepMask?: boolean } = {}) => {
      keepMask.current = options.keepMask ?? false;
      track(next.url);
      setSource(next);
      setResult(null);
      setFormError(null);
      setBrushSize(defaultBrush(next.width, next.height));
      job.reset();
    },
    [job],
  );

  // The mask canvas is rendered with the image: start its history once it has the new size.
  useEffect(() => {
    // A result of the same size keeps the mask and its history (inpaint again, refine the mask).
    if (source && !keepMask.current) mask.reset(source.width, source.height);
    keepMask.current = false;
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [source]);

  // /images/edit?image=<id>: open a gallery image.
  useEffect(() => {
    if (!galleryId) return;
    let live = true;
    setLoading(true);
    setLoadError(null);
    storedImage(galleryId)
      .then(({ source: loaded, view }) => {
        if (!live) return;
        openSource(loaded);
        const meta = view.metadata as { prompt?: unknown; negative_prompt?: unknown };
        if (typeof meta.prompt === 'string') setPrompt((p) => p || meta.prompt as string);
        if (typeof meta.negative_prompt === 'string') setNegative((n) => n || meta.negative_prompt as string);
      })
      .catch((error: unknown) => live && setLoadError(error))
      .finally(() => live && setLoading(false));
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [galleryId]);

  // Ctrl+Z / Ctrl+Shift+Z (and Ctrl+Y) anywhere on the page, except in text fields (their own undo).
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (!(event.ctrlKey || event.metaKey) || !source || mode !== 'inpaint') return;
      const target = event.target as HTMLElement | null;
      if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
      const key = event.key.toLowerCase();
      if (key === 'z' && !event.shiftKey) mask.undo();
      else if ((key === 'z' && event.shiftKey) || key === 'y') mask.redo();
      else return;
      event.preventDefault();
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [mask, mode, source]);

  // A finished job: fetch the result to compare it with the original.
  const state = job.state;
  useEffect(() => {
    if (state.phase !== 'completed' || !source) return;
    const id = state.imageIds[0];
    if (!id) return;
    let live = true;
    setResultError(null);
    fetchAuthorized(`/api/v1/images/${encodeURIComponent(id)}/file`)
      .then((response) => response.blob())
      .then(loadBlob)
      .then((loaded) => {
        if (!live) return;
        track(loaded.url);
        setResult({ id, ...loaded, source, mode, margins });
      })
      .catch((error: unknown) => live && setResultError(error));
    return () => {
      live = false;
    };
    // Only when a job completes; the form's values at that moment belong to the result.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [state]);

  const validate = (): string | null => {
    if (!source) return 'Choose an image first.';
    if (mode !== 'upscale' && !prompt.trim()) return 'Describe what to draw in the prompt.';
    if (mode === 'inpaint' && mask.status.coverage === 0) return 'Paint the area to repaint on the image first (or use “Mask a rectangle”).';
    if (mode === 'outpaint') return checkOutpaint(source, margins);
    if (mode === 'upscale') return checkUpscale(source, scale);
    if (seed && !/^\d+$/.test(seed.trim())) return 'The seed is a whole number (or empty for a random one).';
    return null;
  };

  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    const problem = validate();
    setFormError(problem);
    if (problem || !source) return;
    setResult(null);
    const form = new FormData();
    form.set('image', source.blob, source.name || 'image.png');
    const put = (name: string, value: string | number) => form.set(name, String(value));
    put('prompt', prompt.trim());
    put('negative_prompt', negative.trim());
    if (seed.trim()) put('seed', seed.trim());
    if (mode === 'inpaint' || mode === 'image-to-image') {
      put('strength', strength[mode]);
      put('steps', steps);
      put('guidance_scale', guidance);
      if (mode === 'inpaint') form.set('mask', await mask.exportPng(), 'mask.png');
    } else if (mode === 'outpaint') {
      put('steps', steps);
      put('guidance_scale', guidance);
      (Object.keys(margins) as (keyof Margins)[]).forEach((side) => put(side, margins[side]));
    } else {
      put('scale', scale);
      put('noise_level', noise);
      put('steps', 20);
      put('guidance_scale', guidance);
    }
    await job.submit(KIND[mode], form);
  };

  /** The result becomes the source (the mask is kept: same size for inpaint and image-to-image). */
  const continueWith = (from: Result) =>
    openSource(
      { blob: from.blob, name: `${from.id}.png`, url: from.url, width: from.width, height: from.height, imageId: from.id },
      { keepMask: from.width === from.source.width && from.height === from.source.height },
    );

  // Bring a new result into view (its arrival is also announced to screen readers).
  useEffect(() => {
    if (!result) return;
    const still = window.matchMedia('(prefers-reduced-motion: reduce)').matches;
    resultRef.current?.scrollIntoView?.({ behavior: still ? 'auto' : 'smooth', block: 'nearest' });
  }, [result]);

  const busy = state.phase === 'submitting' || state.phase === 'queued' || state.phase === 'running';
  const modeHint = MODES.find((m) => m.value === mode)?.hint;

  return (
    <div className="editor-page">
      <PageHeader title="Image editor">
        <p className="muted">Inpaint with a mask, transform, outpaint or upscale an image of yours or from the gallery.</p>
      </PageHeader>

      {loading && <Spinner label="Opening the image" />}
      {loadError !== null && (
        <div className="editor-load-error">
          <ErrorMessage error={loadError} />
          <Button size="small" onClick={() => setParams({})}>
            Upload an image instead
          </Button>
        </div>
      )}

      {!source && !loading && (
        <section className="card editor-empty" aria-label="Upload">
          <UploadZone onPicked={(picked) => openSource(picked)} />
          <p className="muted">
            Or open one from the <Link to="/gallery">gallery</Link> (its “Edit” button).
          </p>
        </section>
      )}

      {source && (
        <div className="editor-layout">
          <div className="editor-main">
            {mode === 'inpaint' && (
              <MaskTools
                mask={mask}
                tool={tool}
                onToolChange={setTool}
                brushSize={brushSize}
                onBrushSizeChange={setBrushSize}
                imageSize={source}
              />
            )}
            <EditorCanvas
              imageUrl={source.url}
              imageSize={source}
              mode={mode}
              tool={tool}
              onToolChange={setTool}
              brushSize={brushSize}
              onBrushSizeChange={setBrushSize}
              mask={mask}
              margins={margins}
              onMarginsChange={setMargins}
            />
            <p className="muted editor-source-line">
              {source.name} · {source.width}×{source.height} px
            </p>
            <UploadZone onPicked={(picked) => openSource(picked)} compact />
          </div>

          <form className="editor-side card" onSubmit={(event) => void onSubmit(event)} aria-label="Edit settings" noValidate>
            <fieldset className="mode-picker">
              <legend>Mode</legend>
              {MODES.map((m) => (
                <label key={m.value} className={`mode-option${mode === m.value ? ' mode-option-active' : ''}`}>
                  <input type="radio" name="mode" value={m.value} checked={mode === m.value} onChange={() => setMode(m.value)} />
                  {m.label}
                </label>
              ))}
            </fieldset>
            <p className="field-hint">{modeHint}</p>

            <TextAreaField
              label={mode === 'upscale' ? 'Prompt (optional)' : 'Prompt'}
              value={prompt}
              onChange={(event) => setPrompt(event.target.value)}
              rows={3}
              maxLength={1000}
              required={mode !== 'upscale'}
              hint={mode === 'inpaint' ? 'What should appear in the masked area.' : undefined}
            />
            <TextAreaField
              label="Negative prompt"
              value={negative}
              onChange={(event) => setNegative(event.target.value)}
              rows={2}
              maxLength={1000}
            />

            {(mode === 'inpaint' || mode === 'image-to-image') && (
              <RangeField
                label="Strength"
                min={0.05}
                max={1}
                step={0.05}
                value={strength[mode]}
                onValueChange={(value) => setStrength({ ...strength, [mode]: value })}
                format={(value) => value.toFixed(2)}
                hint="How much to change: 0 keeps the original, 1 redraws it completely."
              />
            )}
            {mode === 'outpaint' && <OutpaintFields margins={margins} onChange={setMargins} image={source} />}
            {mode === 'upscale' && (
              <>
                <fieldset className="mode-picker">
                  <legend>Scale</legend>
                  {([2, 4] as const).map((value) => (
                    <label key={value} className={`mode-option${scale === value ? ' mode-option-active' : ''}`}>
                      <input type="radio" name="scale" checked={scale === value} onChange={() => setScale(value)} />×{value} (
                      {source.width * value}×{source.height * value})
                    </label>
                  ))}
                </fieldset>
                <RangeField
                  label="Added detail (noise level)"
                  min={0}
                  max={350}
                  step={5}
                  value={noise}
                  onValueChange={setNoise}
                  hint="More noise lets the upscaler invent more detail."
                />
              </>
            )}

            <details className="editor-advanced">
              <summary>Advanced</summary>
              {mode !== 'upscale' && (
                <RangeField label="Steps" min={20} max={100} step={1} value={steps} onValueChange={setSteps} />
              )}
              <RangeField
                label="Guidance"
                min={1}
                max={15}
                step={0.5}
                value={guidance}
                onValueChange={setGuidance}
                format={(value) => value.toFixed(1)}
              />
              <label className="field">
                <span>Seed (empty: random)</span>
                <input inputMode="numeric" value={seed} onChange={(event) => setSeed(event.target.value)} />
              </label>
            </details>

            {formError && (
              <p id={formErrorId} className="field-error" role="alert">
                {formError}
              </p>
            )}
            <Button type="submit" variant="primary" busy={busy} aria-describedby={formError ? formErrorId : undefined}>
              {ACTION[mode]}
            </Button>
            {state.phase === 'failed' && <ErrorMessage error={state.error} />}
            {state.phase === 'cancelled' && <Alert tone="info">The job was cancelled.</Alert>}
            <JobProgress state={state} onCancel={() => void job.cancel()} />
          </form>
        </div>
      )}

      {resultError !== null && <ErrorMessage error={resultError} />}
      {result && (
        <section ref={resultRef} className="card editor-result" aria-labelledby="editor-result-title">
          <h2 id="editor-result-title">Result</h2>
          <CompareSlider
            beforeSrc={result.source.url}
            afterSrc={result.url}
            width={result.width}
            height={result.height}
            beforeBox={
              result.mode === 'outpaint'
                ? {
                    left: result.margins.left / result.width,
                    top: result.margins.top / result.height,
                    width: result.source.width / result.width,
                    height: result.source.height / result.height,
                  }
                : undefined
            }
          />
          <p className="muted">
            {result.width}×{result.height} px
          </p>
          <div className="button-row">
            <a className="btn btn-primary" href={result.url} download={`fimum-${result.id}.png`}>
              Download PNG
            </a>
            <Button onClick={() => continueWith(result)}>Keep editing the result</Button>
            <Link className="btn btn-ghost" to={`/gallery/${result.id}`}>
              Open in the gallery
            </Link>
          </div>
        </section>
      )}
    </div>
  );
}

