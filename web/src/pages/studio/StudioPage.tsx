import { useCallback, useEffect, useMemo, useRef, useState, type FormEvent } from 'react';
import { useSearchParams } from 'react-router';
import { api, ApiError } from '../../api/client';
import { useAuth } from '../../auth/AuthContext';
import { Button } from '../../components/Button';
import { Alert, ErrorMessage } from '../../components/ErrorMessage';
import { RangeField } from '../../components/Field';
import { formatReset } from '../../components/format';
import { PageHeader } from '../../components/PageHeader';
import type { QueueJob } from '../../queue/queueState';
import { queueStore } from '../../queue/queueStore';
import type { ImageModels, ImageView, StylePreset } from '../../queue/types';
import { Thumbnail } from '../gallery/AuthorizedImage';
import { DemoBanner } from './DemoBanner';
import type { JobCardActions } from './JobCard';
import { NegativeAssistant } from './NegativeAssistant';
import { PromptBuilder } from './PromptBuilder';
import { QueuePanel } from './QueuePanel';
import { SeedControl } from './SeedControl';
import { SizePicker } from './SizePicker';
import { StylePresetPicker } from './StylePresetPicker';
import { SubmitError } from './SubmitError';
import { buildRequests, formFromImage, LIMITS, validate, type FieldErrors } from './studioForm';
import { useStudioForm } from './useStudioForm';
import './studio.css';

type ServerField = keyof FieldErrors | 'style';
/** A server's complaint about a field, shown while the field still holds the value it was about. */
type ServerErrors = Partial<Record<ServerField, { message: string; value: unknown }>>;

const FIELD_OF: Record<string, ServerField> = {
  prompt: 'prompt',
  negative_prompt: 'negative',
  width: 'width',
  height: 'height',
  seed: 'seed',
  style_preset: 'style',
};

/** Which field a refused request was about, if any (400 with details.field, 422 errors[].field). */
function fieldOf(error: ApiError): ServerField | null {
  if (error.code === 'nsfw_content_blocked') return error.details.stage === 'prompt' ? 'prompt' : null;
  const field = error.details.field;
  if (typeof field === 'string' && FIELD_OF[field]) return FIELD_OF[field] ?? null;
  const errors = error.details.errors;
  if (Array.isArray(errors) && errors.length === 1) {
    const name = (errors[0] as { field?: unknown }).field;
    if (typeof name === 'string' && FIELD_OF[name]) return FIELD_OF[name] ?? null;
  }
  return null;
}

export default function StudioPage() {
  const { user, reload } = useAuth();
  const { form, setForm, update } = useStudioForm();
  const [presets, setPresets] = useState<StylePreset[] | null>(null);
  const [models, setModels] = useState<ImageModels | null>(null);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [submitting, setSubmitting] = useState(false);
  const [submitFailure, setSubmitFailure] = useState<{ error: unknown; queued: number; total: number } | null>(null);
  const [serverErrors, setServerErrors] = useState<ServerErrors>({});
  const [showErrors, setShowErrors] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);
  const [searchParams, setSearchParams] = useSearchParams();
  const formRef = useRef<HTMLFormElement>(null);
  const userId = user?.user.id ?? null;

  useEffect(() => {
    queueStore.attach(userId);
  }, [userId]);

  useEffect(() => {
    let cancelled = false;
    Promise.all([
      api<{ items: StylePreset[] }>('/api/v1/image/presets'),
      api<ImageModels>('/api/v1/image/models'),
    ]).then(
      ([presetList, modelStatus]) => {
        if (cancelled) return;
        setPresets(presetList.items);
        setModels(modelStatus);
      },
      (error: unknown) => {
        if (cancelled) return;
        setPresets([]);
        setLoadError(error);
      },
    );
    return () => {
      cancelled = true;
    };
  }, []);

  // `/images?from=<image id>` (gallery "Regenerate", "Use settings"): load that image's settings.
  const fromId = searchParams.get('from');
  useEffect(() => {
    if (!fromId || presets === null) return;
    let cancelled = false;
    api<ImageView>(`/api/v1/images/${encodeURIComponent(fromId)}`).then(
      (image) => {
        if (cancelled) return;
        setForm((current) => formFromImage(image, presets, current));
        setNotice(`Loaded the settings of that image (seed ${image.seed}, locked). Generate to make it again.`);
        setSearchParams((params) => {
          params.delete('from');
          return params;
        }, { replace: true });
      },
      (error: unknown) => {
        if (!cancelled) setLoadError(error);
      },
    );
    return () => {
      cancelled = true;
    };
  }, [fromId, presets, setForm, setSearchParams]);

  const clientErrors = validate(form);
  const serverError = (field: ServerField, value: unknown) => {
    const entry = serverErrors[field];
    return entry && entry.value === value ? entry.message : undefined;
  };
  const errorFor = (field: keyof FieldErrors, value: unknown) =>
    (showErrors ? clientErrors[field] : undefined) ?? serverError(field, value);

  const submit = useCallback(async () => {
    setShowErrors(true);
    setNotice(null);
    const errors = validate(form);
    if (Object.keys(errors).length > 0) {
      // Focus the first field to fix; its message is read with it.
      window.requestAnimationFrame(() => formRef.current?.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus());
      return;
    }
    const requests = buildRequests(form);
    setSubmitting(true);
    setSubmitFailure(null);
    setServerErrors({});
    const outcome = await queueStore.submitAll(requests);
    setSubmitting(false);
    if (outcome.error !== null) {
      const field = outcome.error instanceof ApiError ? fieldOf(outcome.error) : null;
      if (field && outcome.error instanceof ApiError && outcome.queued === 0) {
        const value = { prompt: form.prompt, negative: form.negativeExtra, width: form.width, height: form.height, seed: form.seed, style: form.stylePreset }[field];
        setServerErrors({ [field]: { message: outcome.error.message, value } });
        window.requestAnimationFrame(() => formRef.current?.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus());
      } else {
        setSubmitFailure({ error: outcome.error, queued: outcome.queued, total: requests.length });
      }
    }
    if (outcome.queued > 0) void reload().catch(() => undefined); // today's usage changed
  }, [form, reload]);

  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    if (!submitting) void submit();
  };

  const actions = useMemo<JobCardActions>(
    () => ({
      cancel: (job: QueueJob) => queueStore.cancel(job.key),
      regenerate: async (job: QueueJob) => {
        if (!job.request) return;
        const outcome = await queueStore.submitAll([job.request]);
        if (outcome.error !== null) throw outcome.error;
        void reload().catch(() => undefined);
      },
      reuse: (imageId: string) => {
        setSearchParams({ from: imageId });
        window.scrollTo({ top: 0 });
      },
      vary: (imageId: string) => {
        update('sourceImageId', imageId);
        setNotice('Image-to-image: the result will start from that image. Adjust the strength below.');
        window.scrollTo({ top: 0 });
      },
      dismiss: (job: QueueJob) => queueStore.dismiss(job.key),
    }),
    [reload, setSearchParams, update],
  );

  const clearFinished = useCallback(() => queueStore.clearFinished(), []);
  const usage = user?.usage.images;
  const remaining = usage?.remaining ?? null;
  const presetList = presets ?? [];

  return (
    <div className="studio-page">
      <PageHeader title="Image studio" />
      <DemoBanner models={models} />
      {loadError !== null && <ErrorMessage error={loadError} />}
      {notice && (
        <Alert tone="info" urgent={false}>
          <p>{notice}</p>
        </Alert>
      )}
      <div className="studio">
        <form ref={formRef} className="studio-form card" onSubmit={onSubmit} aria-label="Image settings" noValidate>
          <PromptBuilder
            prompt={form.prompt}
            onChange={(prompt) => update('prompt', prompt)}
            error={errorFor('prompt', form.prompt)}
            onSubmitShortcut={() => formRef.current?.requestSubmit()}
          />
          <NegativeAssistant
            terms={form.negativeTerms}
            extra={form.negativeExtra}
            error={errorFor('negative', form.negativeExtra)}
            onChange={(value) => setForm((current) => ({ ...current, ...value }))}
          />
          {form.sourceImageId && (
            <fieldset className="studio-fieldset source-image">
              <legend>Start image (image-to-image)</legend>
              <div className="source-row">
                <Thumbnail
                  src={`/api/v1/images/${encodeURIComponent(form.sourceImageId)}/file?variant=thumbnail`}
                  alt="The start image"
                  width={96}
                  height={96}
                  lazy={false}
                />
                <div className="source-controls">
                  <RangeField
                    label="Strength"
                    min={0}
                    max={1}
                    step={0.05}
                    value={form.strength}
                    onValueChange={(value) => update('strength', value)}
                    format={(value) => `${Math.round(value * 100)} %`}
                    hint="How much to change the start image: 0 % keeps it, 100 % repaints everything."
                  />
                  <Button size="small" onClick={() => update('sourceImageId', null)}>
                    Remove start image
                  </Button>
                </div>
              </div>
            </fieldset>
          )}
          <StylePresetPicker
            presets={presetList}
            selected={form.stylePreset}
            error={serverError('style', form.stylePreset)}
            onSelect={(preset) =>
              setForm((current) => ({
                ...current,
                stylePreset: preset?.name ?? null,
                // A preset's suggested settings move the sliders; the user may change them after.
                steps: preset?.steps ?? current.steps,
                guidanceScale: preset?.guidance_scale ?? current.guidanceScale,
              }))
            }
          />
          {!form.sourceImageId && (
            <SizePicker
              width={form.width}
              height={form.height}
              maxSide={LIMITS.sizeMax}
              errors={{ width: errorFor('width', form.width), height: errorFor('height', form.height) }}
              onChange={(size) => setForm((current) => ({ ...current, ...size }))}
            />
          )}
          <fieldset className="studio-fieldset">
            <legend>Sampling</legend>
            <RangeField
              label="Steps"
              min={LIMITS.stepsMin}
              max={LIMITS.stepsMax}
              step={1}
              value={form.steps}
              onValueChange={(value) => update('steps', value)}
              hint="More steps add detail and take longer."
            />
            <RangeField
              label="Guidance (CFG)"
              min={LIMITS.guidanceMin}
              max={LIMITS.guidanceMax}
              step={LIMITS.guidanceStep}
              value={form.guidanceScale}
              onValueChange={(value) => update('guidanceScale', value)}
              format={(value) => value.toFixed(1)}
              hint="How closely the image follows the prompt; 5–9 suits most prompts."
            />
          </fieldset>
          <SeedControl
            seed={form.seed}
            locked={form.seedLocked}
            batch={form.batch}
            error={errorFor('seed', form.seed)}
            onChange={(value) => setForm((current) => ({ ...current, ...value }))}
          />
          <RangeField
            label="Images"
            min={LIMITS.batchMin}
            max={LIMITS.batchMax}
            step={1}
            value={form.batch}
            onValueChange={(value) => update('batch', value)}
            format={(value) => `${value} image${value === 1 ? '' : 's'}`}
            hint="Each image is its own job in the queue, with its own progress and preview."
          />
          {usage && usage.limit !== null && (
            <p className={remaining !== null && remaining < form.batch ? 'quota-hint quota-low' : 'quota-hint muted'}>
              {remaining} of {usage.limit} images left today; resets at {formatReset(usage.resets_at)}.
            </p>
          )}
          <div className="generate-row">
            <Button type="submit" variant="primary" busy={submitting} className="generate-button">
              {form.batch === 1 ? 'Generate image' : `Generate ${form.batch} images`}
            </Button>
          </div>
          {submitFailure && <SubmitError error={submitFailure.error} queued={submitFailure.queued} total={submitFailure.total} />}
        </form>
        <QueuePanel actions={actions} onClearFinished={clearFinished} />
      </div>
    </div>
  );
}
