import {
  startTransition,
  useEffect,
  useId,
  useMemo,
  useOptimistic,
  useRef,
  useState,
  type FormEvent,
  type ReactNode,
} from 'react';
import { Link, useSearchParams } from 'react-router';
import { api, ApiError } from '../../api/client';
import { announce } from '../../components/announce';
import { Button } from '../../components/Button';
import { Alert, ErrorMessage } from '../../components/ErrorMessage';
import { SelectField, TextField } from '../../components/Field';
import { formatDateTime } from '../../components/format';
import { PageHeader } from '../../components/PageHeader';
import { Spinner } from '../../components/Spinner';
import { CredibilityBadge } from './CredibilityBadge';
import { languageName, languageOptions } from './languages';
import { pageCount, pageWindow } from './pagination';
import {
  DEFAULT_SEARCH,
  FILE_TYPES,
  SEARCH_MODES,
  activeFilterCount,
  dateRangeError,
  invalidDomainTokens,
  parseDomainList,
  searchApiPath,
  stateFromParams,
  stateToParams,
  type FileType,
  type SearchMode,
  type SearchState,
} from './queryState';
import { SnapshotDialog } from './SnapshotDialog';
import { Snippet } from './Snippet';
import { MAX_PAGE, PAGE_SIZE, type SearchResponse, type SearchResult } from './types';
import './search.css';

const MODE_TEXT: Record<SearchMode, { label: string; hint: string }> = {
  hybrid: { label: 'Hybrid', hint: 'Words and meaning combined (best for most searches)' },
  keyword: { label: 'Keyword', hint: 'Exact words, ranked by BM25' },
  semantic: { label: 'Semantic', hint: 'Meaning, even without the same words' },
};

const FILE_TYPE_LABELS: Record<FileType, string> = { html: 'Web pages', pdf: 'PDF', docx: 'Word (DOCX)', txt: 'Plain text' };

/** What the filter form edits before it is applied (domain lists as typed, so typos can be shown). */
interface Draft {
  q: string;
  from: string;
  to: string;
  include: string;
  exclude: string;
  fileTypes: FileType[];
  lang: string;
}

function draftOf(state: SearchState): Draft {
  return {
    q: state.q,
    from: state.from,
    to: state.to,
    include: state.includeDomains.join(', '),
    exclude: state.excludeDomains.join(', '),
    fileTypes: state.fileTypes,
    lang: state.lang,
  };
}

type Load =
  | { status: 'idle' }
  | { status: 'loading'; previous: SearchResponse | null }
  | { status: 'failed'; error: unknown }
  | { status: 'ready'; response: SearchResponse };

function displayUrl(url: string): { site: string; path: string } {
  try {
    const parsed = new URL(url);
    const path = decodeURI(parsed.pathname + parsed.search);
    return { site: parsed.host, path: path === '/' ? '' : path };
  } catch {
    return { site: url, path: '' };
  }
}

function safeHref(url: string): string | undefined {
  // Only web links: a javascript: or data: URL from a crawled page must never become clickable.
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.href : undefined;
  } catch {
    return undefined;
  }
}

function ResultItem({ result, onSnapshot }: { result: SearchResult; onSnapshot: (id: string) => void }) {
  const { site, path } = displayUrl(result.url);
  const href = safeHref(result.url);
  const title = result.title?.trim() || site;
  return (
    <li className="search-result">
      <article aria-label={title}>
        <p className="search-result-site">
          <span className="search-result-host">{result.site || site}</span>
          {path && <span className="search-result-path"> {path}</span>}
        </p>
        <h2 className="search-result-title">{href ? <a href={href}>{title}</a> : title}</h2>
        <Snippet text={result.snippet ?? ''} />
        <p className="search-result-meta">
          {result.published ? (
            <span>
              Published <time dateTime={result.published}>{formatDateTime(result.published)}</time>
            </span>
          ) : (
            <span>No publication date</span>
          )}
          <span>
            Crawled <time dateTime={result.fetched_at}>{formatDateTime(result.fetched_at)}</time>
          </span>
          {result.lang && (
            <span>
              <span className="visually-hidden">Language: </span>
              <span lang={result.lang}>{languageName(result.lang)}</span>
            </span>
          )}
          {result.filetype && result.filetype !== 'html' && (
            <span className="badge">{result.filetype.toUpperCase()}</span>
          )}
          <CredibilityBadge credibility={result.credibility} />
          {result.snapshot_id && (
            <Button size="small" variant="ghost" onClick={() => onSnapshot(result.snapshot_id)}>
              Snapshot<span className="visually-hidden"> of {title}</span>
            </Button>
          )}
        </p>
      </article>
    </li>
  );
}

/**
 * Our own web search (issue 8): a query box, the ranking mode, filters, and results with highlighted
 * snippets, dates, languages, credibility and a snapshot of each source. The whole search lives in
 * the URL, so it can be shared and Back returns to the previous search.
 */
export default function SearchPage() {
  const [params, setParams] = useSearchParams();
  const state = useMemo(() => stateFromParams(params), [params]);
  const apiPath = searchApiPath(state);
  const [draft, setDraft] = useState<Draft>(() => draftOf(state));
  const [load, setLoad] = useState<Load>({ status: 'idle' });
  const [snapshotId, setSnapshotId] = useState<string | null>(null);
  const [submitted, setSubmitted] = useState(false);
  const resultsHeading = useRef<HTMLHeadingElement>(null);
  const modeName = useId();
  // The router applies URL changes in a transition; until it commits, the clicked mode is shown
  // optimistically (a controlled radio would otherwise snap back to the old mode for a moment).
  const [shownMode, showMode] = useOptimistic(state.mode);
  const langOptions = useMemo(languageOptions, []);

  // The URL changed (a search, a page link, Back/Forward): the form shows what is searched.
  const paramsKey = params.toString();
  useEffect(() => {
    setDraft(draftOf(stateFromParams(new URLSearchParams(paramsKey))));
    setSubmitted(false);
  }, [paramsKey]);

  useEffect(() => {
    if (!apiPath) {
      setLoad({ status: 'idle' });
      return;
    }
    const controller = new AbortController();
    setLoad((current) => ({ status: 'loading', previous: current.status === 'ready' ? current.response : null }));
    api<SearchResponse>(apiPath, { signal: controller.signal }).then(
      (response) => {
        setLoad({ status: 'ready', response });
        const count = response.total;
        announce(count === 0 ? 'No results.' : `${count} result${count === 1 ? '' : 's'}.`);
      },
      (error: unknown) => {
        if (!controller.signal.aborted) setLoad({ status: 'failed', error });
      },
    );
    return () => controller.abort();
  }, [apiPath]);

  const includeErrors = invalidDomainTokens(draft.include);
  const excludeErrors = invalidDomainTokens(draft.exclude);
  const rangeError = dateRangeError(draft);
  const formInvalid = includeErrors.length > 0 || excludeErrors.length > 0 || rangeError !== null;

  const go = (next: SearchState) => setParams(stateToParams(next));

  const submit = (event: FormEvent) => {
    event.preventDefault();
    setSubmitted(true);
    if (formInvalid || !draft.q.trim()) {
      // Take the user to what needs fixing (after React has marked it invalid).
      const form = event.currentTarget as HTMLFormElement;
      requestAnimationFrame(() => form.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus());
      return;
    }
    go({
      ...state,
      q: draft.q.trim(),
      from: draft.from,
      to: draft.to,
      includeDomains: parseDomainList(draft.include),
      excludeDomains: parseDomainList(draft.exclude).filter((d) => !parseDomainList(draft.include).includes(d)),
      fileTypes: draft.fileTypes,
      lang: draft.lang,
      page: 1,
    });
  };

  const setMode = (mode: SearchMode) =>
    startTransition(() => {
      showMode(mode);
      if (state.q) go({ ...state, mode, page: 1 });
      else setParams(stateToParams({ ...DEFAULT_SEARCH, mode }));
    });

  const clearFilters = () => {
    const cleared = { ...draft, from: '', to: '', include: '', exclude: '', fileTypes: [], lang: '' };
    setDraft(cleared);
    if (state.q) go({ ...DEFAULT_SEARCH, q: state.q, mode: state.mode });
  };

  // After following a page link, continue reading at the top of the new results.
  const focusResults = () => resultsHeading.current?.focus();

  const response = load.status === 'ready' ? load.response : load.status === 'loading' ? load.previous : null;
  // The API pages up to MAX_PAGE; hybrid and semantic results end after the fused candidates, so a
  // deep page can come back empty although `total` is larger (see the note below the results).
  const pages = response ? Math.min(MAX_PAGE, Math.max(pageCount(response.total, PAGE_SIZE), state.page)) : 0;
  const pastEnd = response !== null && response.total > 0 && response.results.length === 0;
  const filters = activeFilterCount(state);

  return (
    <div className="search">
      <PageHeader title="Search" />
      <form role="search" aria-label="Web search" className="search-form" onSubmit={submit} noValidate>
        <div className="search-box">
          <TextField
            label="Search the web index"
            type="search"
            name="q"
            value={draft.q}
            onChange={(event) => setDraft({ ...draft, q: event.target.value })}
            error={submitted && !draft.q.trim() ? 'Type something to search for.' : undefined}
            autoComplete="off"
            enterKeyHint="search"
            fieldClassName="search-query"
          />
          <Button type="submit" variant="primary" className="search-submit">
            Search
          </Button>
        </div>

        <fieldset className="search-modes">
          <legend>Ranking</legend>
          {SEARCH_MODES.map((mode) => (
            <label key={mode} className={shownMode === mode ? 'search-mode search-mode-active' : 'search-mode'}>
              <input
                type="radio"
                name={modeName}
                value={mode}
                checked={shownMode === mode}
                onChange={() => setMode(mode)}
              />
              <span className="search-mode-label">{MODE_TEXT[mode].label}</span>
              <span className="search-mode-hint">{MODE_TEXT[mode].hint}</span>
            </label>
          ))}
        </fieldset>

        <details className="search-filters" open={filters > 0 || undefined}>
          <summary>
            Filters{filters > 0 ? ` (${filters} active)` : ''}
          </summary>
          <div className="search-filter-grid">
            <fieldset className="search-dates">
              <legend>Published between</legend>
              <TextField
                label="From"
                type="date"
                value={draft.from}
                max={draft.to || undefined}
                onChange={(event) => setDraft({ ...draft, from: event.target.value })}
              />
              <TextField
                label="To"
                type="date"
                value={draft.to}
                min={draft.from || undefined}
                onChange={(event) => setDraft({ ...draft, to: event.target.value })}
                error={rangeError ?? undefined}
              />
            </fieldset>
            <TextField
              label="Only these sites"
              hint="Domains separated by commas, e.g. example.com, docs.python.org"
              value={draft.include}
              onChange={(event) => setDraft({ ...draft, include: event.target.value })}
              error={includeErrors.length ? `Not a site name: ${includeErrors.join(', ')}` : undefined}
              autoComplete="off"
              spellCheck={false}
            />
            <TextField
              label="Leave out these sites"
              hint="Domains separated by commas"
              value={draft.exclude}
              onChange={(event) => setDraft({ ...draft, exclude: event.target.value })}
              error={excludeErrors.length ? `Not a site name: ${excludeErrors.join(', ')}` : undefined}
              autoComplete="off"
              spellCheck={false}
            />
            <fieldset className="search-types">
              <legend>File types</legend>
              {FILE_TYPES.map((type) => (
                <label key={type} className="check">
                  <input
                    type="checkbox"
                    checked={draft.fileTypes.includes(type)}
                    onChange={(event) =>
                      setDraft({
                        ...draft,
                        fileTypes: event.target.checked
                          ? [...draft.fileTypes, type]
                          : draft.fileTypes.filter((t) => t !== type),
                      })
                    }
                  />{' '}
                  {FILE_TYPE_LABELS[type]}
                </label>
              ))}
            </fieldset>
            <SelectField label="Language" value={draft.lang} onChange={(event) => setDraft({ ...draft, lang: event.target.value })}>
              <option value="">Any language</option>
              {langOptions.map((option) => (
                <option key={option.code} value={option.code}>
                  {option.name}
                </option>
              ))}
            </SelectField>
          </div>
          <div className="search-filter-actions">
            <Button type="submit" variant="primary">
              Apply filters
            </Button>
            <Button onClick={clearFilters} disabled={filters === 0 && activeFilterCount({ ...DEFAULT_SEARCH, ...draftState(draft) }) === 0}>
              Clear filters
            </Button>
          </div>
        </details>
      </form>

      <section className="search-results" aria-labelledby="search-results-heading" aria-busy={load.status === 'loading'}>
        <h2 id="search-results-heading" ref={resultsHeading} tabIndex={-1} className="visually-hidden">
          Results
        </h2>
        {load.status === 'idle' && (
          <p className="search-intro">
            Search the pages Fimum has crawled. Every result links to a stored snapshot of the text as it was crawled,
            so you can check a citation after the page changes. Crawling is run by an administrator with{' '}
            <code>fimum crawl</code>.
          </p>
        )}
        {load.status === 'loading' && !load.previous && <Spinner label="Searching" />}
        {load.status === 'failed' &&
          (load.error instanceof ApiError && load.error.status === 404 ? (
            <Alert tone="warning" title="Search is not available on this server yet.">
              <p>The search index has not been set up. An administrator can fill it with <code>fimum crawl</code>.</p>
            </Alert>
          ) : load.error instanceof ApiError && load.error.code === 'search_unavailable' && state.mode !== 'keyword' ? (
            <Alert tone="warning" title="Semantic ranking is unavailable right now.">
              <p>
                {load.error.message}.{' '}
                <Link to={`/search?${stateToParams({ ...state, mode: 'keyword', page: 1 }).toString()}`}>Search by keyword</Link>{' '}
                instead.
              </p>
            </Alert>
          ) : (
            <ErrorMessage error={load.error} />
          ))}
        {response && (
          <>
            <p className="search-stats" role="status">
              {response.total === 0
                ? `No results for “${state.q}”.`
                : `${response.total.toLocaleString()} result${response.total === 1 ? '' : 's'} · page ${state.page} of ${pages}`}{' '}
              <span className="search-took">({Math.round(response.took_ms)} ms)</span>
              {load.status === 'loading' && <span className="visually-hidden"> Updating…</span>}
            </p>
            {response.total === 0 && (
              <ul className="search-tips">
                {filters > 0 && (
                  <li>
                    <Button variant="ghost" size="small" onClick={clearFilters}>
                      Search without filters
                    </Button>
                  </li>
                )}
                {state.mode !== 'semantic' && (
                  <li>
                    Try <Link to={`/search?${stateToParams({ ...state, mode: 'semantic', page: 1 }).toString()}`}>semantic search</Link>, which
                    finds pages by meaning.
                  </li>
                )}
                <li>Check the spelling, or use fewer words.</li>
              </ul>
            )}
            {pastEnd && (
              <p className="search-tips">
                No more results on this page: hybrid and semantic ranking stop after the best candidates.{' '}
                <Link to={`/search?${stateToParams({ ...state, page: 1 }).toString()}`}>Back to the first page</Link>
                {state.mode !== 'keyword' && (
                  <>
                    {' '}or{' '}
                    <Link to={`/search?${stateToParams({ ...state, mode: 'keyword' }).toString()}`}>page through keyword results</Link>
                  </>
                )}
                .
              </p>
            )}
            <ol className={load.status === 'loading' ? 'search-list search-list-stale' : 'search-list'}>
              {response.results.map((result) => (
                <ResultItem key={`${result.url}#${result.snapshot_id ?? ''}`} result={result} onSnapshot={setSnapshotId} />
              ))}
            </ol>
            {pages > 1 && (
              <nav className="search-pages" aria-label="Result pages">
                <PageLink state={state} page={state.page - 1} disabled={state.page <= 1} onFollow={focusResults}>
                  Previous<span className="visually-hidden"> page</span>
                </PageLink>
                <ul>
                  {pageWindow(state.page, pages).map((item, index) =>
                    item === 'gap' ? (
                      <li key={`gap-${index}`} aria-hidden="true" className="search-page-gap">
                        …
                      </li>
                    ) : (
                      <li key={item}>
                        <PageLink state={state} page={item} current={item === state.page} onFollow={focusResults}>
                          <span className="visually-hidden">Page </span>
                          {item}
                        </PageLink>
                      </li>
                    ),
                  )}
                </ul>
                <PageLink state={state} page={state.page + 1} disabled={state.page >= pages} onFollow={focusResults}>
                  Next<span className="visually-hidden"> page</span>
                </PageLink>
              </nav>
            )}
          </>
        )}
      </section>
      {snapshotId && <SnapshotDialog snapshotId={snapshotId} onClose={() => setSnapshotId(null)} />}
    </div>
  );
}

interface PageLinkProps {
  state: SearchState;
  page: number;
  current?: boolean;
  disabled?: boolean;
  onFollow: () => void;
  children: ReactNode;
}

/** A real link per result page (shareable, opens in a new tab); a disabled one is plain text. */
function PageLink({ state, page, current, disabled, onFollow, children }: PageLinkProps) {
  if (disabled) {
    return (
      <span className="btn btn-small btn-ghost search-page-disabled" aria-disabled="true">
        {children}
      </span>
    );
  }
  return (
    <Link
      to={`/search?${stateToParams({ ...state, page }).toString()}`}
      className={current ? 'btn btn-small btn-primary' : 'btn btn-small btn-ghost'}
      aria-current={current ? 'page' : undefined}
      onClick={onFollow}
    >
      {children}
    </Link>
  );
}

/** The draft's filters in state form (to know whether "Clear filters" has anything to clear). */
function draftState(draft: Draft): Partial<SearchState> {
  return {
    from: draft.from,
    to: draft.to,
    includeDomains: parseDomainList(draft.include),
    excludeDomains: parseDomainList(draft.exclude),
    fileTypes: draft.fileTypes,
    lang: draft.lang,
  };
}
