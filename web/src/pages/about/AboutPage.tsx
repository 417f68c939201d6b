import { useEffect, useState } from 'react';
import { api } from '../../api/client';
import { ErrorMessage } from '../../components/ErrorMessage';
import { PageHeader } from '../../components/PageHeader';
import { Spinner } from '../../components/Spinner';
import { Terms } from './Terms';
import './about.css';

/** GET /api/v1/about (src/fimum_ai/about.py). */
interface About {
  name: string;
  version: string;
  mode: 'embedded' | 'distributed';
  models: { role: 'base' | 'refiner' | 'upscaler'; name: string; demo: boolean; licence: string }[];
  licences: { id: string; name: string; applies_to: string; text: string | null }[];
  notes: string | null;
  docs: Record<string, string>;
}

const ROLE_NAMES = { base: 'Base model', refiner: 'Refiner', upscaler: 'Upscaler (x4)' } as const;

export default function AboutPage() {
  const [about, setAbout] = useState<About | null>(null);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    api<About>('/api/v1/about').then(setAbout, setError);
  }, []);

  // Deep link to #terms (the login page links there): scroll once the content exists.
  useEffect(() => {
    if (about && window.location.hash) document.getElementById(window.location.hash.slice(1))?.scrollIntoView();
  }, [about]);

  const licenceName = (id: string) => about?.licences.find((licence) => licence.id === id)?.name ?? id;

  return (
    <>
      <PageHeader title="About Fimum AI" />
      <ErrorMessage error={error} />
      {!about && !error && <Spinner label="Loading" />}
      {about && (
        <>
          <section className="card" aria-labelledby="version-heading">
            <h2 id="version-heading">This installation</h2>
            <dl className="about-facts">
              <div>
                <dt>Version</dt>
                <dd>{about.version}</dd>
              </div>
              <div>
                <dt>Mode</dt>
                <dd>{about.mode === 'embedded' ? 'embedded (one process)' : 'distributed'}</dd>
              </div>
            </dl>
            <h3>API documentation</h3>
            <ul className="link-list">
              <li>
                <a href={about.docs.swagger ?? '/docs'}>Interactive API reference (Swagger UI)</a>
              </li>
              <li>
                <a href={about.docs.redoc ?? '/redoc'}>API reference (ReDoc)</a>
              </li>
              <li>
                <a href={about.docs.openapi ?? '/openapi.json'}>OpenAPI schema (JSON)</a>
              </li>
            </ul>
            <p className="muted">
              Authenticate with an access token or a personal API key from your account page. Image generation is also
              available at the OpenAI-compatible <code>/v1/images/generations</code>.
            </p>
          </section>

          <section className="card" aria-labelledby="models-heading">
            <h2 id="models-heading">Active image models</h2>
            {about.models.length === 0 ? (
              <p>
                No image model is installed. The operator can install Stable Diffusion XL with <code>fimum models download all</code>.
              </p>
            ) : (
              <div className="table-wrap">
                <table>
                  <caption className="visually-hidden">Installed image models and their licences</caption>
                  <thead>
                    <tr>
                      <th scope="col">Role</th>
                      <th scope="col">Model</th>
                      <th scope="col">Licence</th>
                    </tr>
                  </thead>
                  <tbody>
                    {about.models.map((model) => (
                      <tr key={model.role}>
                        <td>{ROLE_NAMES[model.role]}</td>
                        <td>
                          <code>{model.name}</code>
                          {model.demo && <span className="badge badge-warning">demo: images are noise</span>}
                        </td>
                        <td>
                          <a href={`#licence-${model.licence}`}>{licenceName(model.licence)}</a>
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
            {about.models.some((model) => model.demo) && (
              <p className="muted">
                The demo model has random weights, built on this machine so that every feature works without a download.
                Install Stable Diffusion XL (<code>fimum models download all</code>) for real pictures; its licence is below.
              </p>
            )}
          </section>

          <Terms />

          <section className="card" aria-labelledby="licences-heading">
            <h2 id="licences-heading">Licences</h2>
            {about.licences.map((licence) => (
              <article key={licence.id} id={`licence-${licence.id}`} className="licence" aria-labelledby={`licence-${licence.id}-name`}>
                <h3 id={`licence-${licence.id}-name`}>{licence.name}</h3>
                <p>Applies to: {licence.applies_to}.</p>
                {licence.text ? (
                  <details>
                    <summary>Full text of the {licence.name}</summary>
                    {/* Plain text, rendered as text. */}
                    <pre className="licence-text" role="region" tabIndex={0} aria-label={`${licence.name}, full text`}>
                      {licence.text}
                    </pre>
                  </details>
                ) : (
                  <p className="muted">The full text ships with the package that provides it.</p>
                )}
              </article>
            ))}
            {about.notes && (
              <details>
                <summary>Which licence covers what (LICENSES/README.md)</summary>
                <pre className="licence-text" role="region" tabIndex={0} aria-label="Licence notes">
                  {about.notes}
                </pre>
              </details>
            )}
          </section>
        </>
      )}
    </>
  );
}
