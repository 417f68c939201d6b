import { keyboardScrollable } from './scrollable';
import type { Answer, ResearchTrack, ToolStep } from '../../chat/answer';
import type { Source } from '../../chat/events';
import { ChatImage } from './ChatImage';
import { formatTime, modelLabel } from './format';
import { Markdown } from './Markdown';

const REASON_TEXT: Record<string, string> = {
  rate_limited: 'rate limited',
  server_error: 'server error',
  timeout: 'timed out',
  empty: 'empty answer',
  breaker_open: 'unavailable',
};

function argumentsSummary(step: ToolStep): string {
  try {
    const args = JSON.parse(step.arguments) as Record<string, unknown>;
    if (typeof args.prompt === 'string') return args.prompt;
    if (typeof args.question === 'string') return args.question;
    if (typeof args.query === 'string') return args.query;
    if (typeof args.language === 'string') return args.language;
  } catch {
    // not JSON: show nothing
  }
  return '';
}

function ToolSteps({ tools }: { tools: ToolStep[] }) {
  return (
    <ul className="tool-steps" aria-label="Tools used">
      {tools.map((step) => {
        const summary = argumentsSummary(step);
        const state = step.result === null ? 'running' : step.result.ok ? 'done' : 'failed';
        return (
          <li key={step.id} className={`tool-step tool-step-${state}`}>
            <details>
              <summary>
                <span className="tool-name">{step.name}</span>
                {summary && <span className="tool-summary"> {summary}</span>}
                <span className="tool-state"> · {state === 'running' ? 'running…' : state}</span>
              </summary>
              {step.arguments && (
                <pre {...keyboardScrollable} aria-label={`${step.name} arguments`}>
                  {step.arguments}
                </pre>
              )}
              {step.result && (
                <pre {...keyboardScrollable} aria-label={`${step.name} result`}>
                  {step.result.content}
                </pre>
              )}
            </details>
          </li>
        );
      })}
    </ul>
  );
}

function Sources({ items, heading }: { items: Source[]; heading: string }) {
  if (items.length === 0) return null;
  return (
    <section className="answer-sources" aria-label={heading}>
      <h3>{heading}</h3>
      <ol>
        {items.map((source, index) => (
          <li key={`${source.url}-${index}`}>
            <a href={source.url} target="_blank" rel="noopener noreferrer nofollow">
              {source.title || source.url}
            </a>
            {source.cited_by && source.cited_by.length > 0 && <span className="muted"> · cited by {source.cited_by.join(', ')}</span>}
          </li>
        ))}
      </ol>
    </section>
  );
}

function ResearchProgress({ tracks, names }: { tracks: ResearchTrack[]; names: Map<string, string> }) {
  return (
    <section className="research" aria-label="Research models">
      <h3>Research models</h3>
      <ul className="research-tracks">
        {tracks.map((track) => (
          <li key={track.model} className={`research-track research-${track.status}`}>
            <details>
              <summary>
                <span className="research-model">{modelLabel(track.model, names)}</span>
                <span className="research-status">
                  {track.status === 'running' ? ` · researching (${track.text.length} characters so far)` : track.status === 'done' ? ' · done' : ` · failed: ${track.error ?? 'error'}`}
                </span>
              </summary>
              {track.text ? <Markdown text={track.text} /> : <p className="muted">No text yet.</p>}
            </details>
          </li>
        ))}
      </ul>
    </section>
  );
}

const STATUS_LABEL = { streaming: 'Answering…', done: '', error: 'Failed', cancelled: 'Stopped' } as const;

/** One assistant bubble: attribution, time, tools, images, the Markdown answer, notes and sources. */
export function AnswerView({ answer, createdAt, names, research }: { answer: Answer; createdAt: string; names: Map<string, string>; research?: boolean }) {
  const streaming = answer.status === 'streaming';
  return (
    <article className={`bubble bubble-assistant bubble-${answer.status}`} aria-busy={streaming || undefined} aria-label={`Answer from ${modelLabel(answer.model, names)}`}>
      <header className="bubble-meta">
        <span className="bubble-model" data-model={answer.model ?? ''}>
          {research ? 'Research · ' : ''}
          {modelLabel(answer.model, names)}
        </span>
        <time dateTime={createdAt}>{formatTime(createdAt)}</time>
        {STATUS_LABEL[answer.status] && <span className="bubble-status">{STATUS_LABEL[answer.status]}</span>}
      </header>
      {answer.switches.length > 0 && (
        <ul className="answer-notes" aria-label="Model changes">
          {answer.switches.map((change, index) => (
            <li key={index}>
              {modelLabel(change.previous, names)} {REASON_TEXT[change.reason] ?? change.reason}: switched to {modelLabel(change.model, names)}
            </li>
          ))}
        </ul>
      )}
      {answer.notes.length > 0 && (
        <ul className="answer-notes">
          {answer.notes.map((note, index) => (
            <li key={index}>{note}</li>
          ))}
        </ul>
      )}
      {answer.research.length > 0 && <ResearchProgress tracks={answer.research} names={names} />}
      {answer.tools.length > 0 && <ToolSteps tools={answer.tools} />}
      {answer.images.length > 0 && (
        <div className="answer-images">
          {answer.images.map((id) => (
            <ChatImage key={id} imageId={id} alt="Image generated for this answer" />
          ))}
        </div>
      )}
      {answer.text ? <Markdown text={answer.text} /> : null}
      {streaming && (
        <p className="answer-stage">
          <span className="chat-spinner" aria-hidden="true" /> {answer.stage ?? (answer.text ? '' : 'Waiting for the model…')}
        </p>
      )}
      <Sources items={answer.sources} heading="Sources" />
      {answer.error && (
        <p className="answer-error" role="alert">
          {answer.error.message}
        </p>
      )}
      {answer.usage && !streaming && (
        <p className="bubble-usage muted">
          {answer.usage.prompt} prompt + {answer.usage.completion} answer tokens
        </p>
      )}
    </article>
  );
}
