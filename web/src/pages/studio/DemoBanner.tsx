import { Alert } from '../../components/ErrorMessage';
import type { ImageModels } from '../../queue/types';

/** Says loudly when images will be noise (the tiny demo model) or cannot be made at all. */
export function DemoBanner({ models }: { models: ImageModels | null }) {
  if (models === null) return null;
  if (!models.installed) {
    return (
      <Alert tone="warning" title="No image model is installed." urgent={false}>
        <p>
          Install Stable Diffusion XL with <code>fimum models download all</code> or build the noise-only
          demo model with <code>fimum models make-tiny models/tiny-sdxl</code>, then restart the server.
        </p>
      </Alert>
    );
  }
  if (!models.demo) return null;
  return (
    <Alert tone="warning" title="Demo model: images will be random noise." urgent={false} className="demo-banner">
      <p>
        This server runs the tiny random-weight demo model, so everything works (queue, progress, previews, gallery) but
        the pictures are noise. To get real images, install Stable Diffusion XL on the server:
      </p>
      <ol>
        <li>
          <code>fimum models download all</code> (base, refiner and x4 upscaler; or copy their diffusers
          folders to <code>./models/stable-diffusion-xl-*</code>),
        </li>
        <li>restart the server.</li>
      </ol>
    </Alert>
  );
}
