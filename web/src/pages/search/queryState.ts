/**
 * The Search page keeps its whole state in the URL (shareable, Back/Forward work), with the same
 * parameters as `GET /api/v1/search`: q, mode, from, to, domain, filetype, lang, page. A domain to
 * leave out is sent as `domain=-example.com`; several domains, file types or languages repeat the
 * parameter. Anything malformed in a hand-edited URL falls back to the default instead of failing.
 */
import { MAX_PAGE } from './types';

export const SEARCH_MODES = ['hybrid', 'keyword', 'semantic'] as const;
export type SearchMode = (typeof SEARCH_MODES)[number];

export const FILE_TYPES = ['html', 'pdf', 'docx', 'txt'] as const;
export type FileType = (typeof FILE_TYPES)[number];

export interface SearchState {
  q: string;
  mode: SearchMode;
  /** Inclusive date range, YYYY-MM-DD, "" when open. */
  from: string;
  to: string;
  includeDomains: string[];
  excludeDomains: string[];
  fileTypes: FileType[];
  /** ISO 639-1 code (the API takes 2-3 letters, no region), "" for any language. */
  lang: string;
  /** 1-based. */
  page: number;
}

export const DEFAULT_SEARCH: SearchState = {
  q: '',
  mode: 'hybrid',
  from: '',
  to: '',
  includeDomains: [],
  excludeDomains: [],
  fileTypes: [],
  lang: '',
  page: 1,
};

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** A real calendar date in YYYY-MM-DD form (rejects 2024-02-30). */
export function isIsoDate(value: string): boolean {
  const match = DATE.exec(value);
  if (!match) return false;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const date = new Date(Date.UTC(year, month - 1, day));
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

/**
 * "https://WWW.Example.com:443/path?x" → "www.example.com" (the URL parser lower-cases and turns
 * international names into punycode, as the index stores them). Returns "" for something that is
 * not a host name, so typing junk never sends junk.
 */
export function normaliseDomain(input: string): string {
  let value = input.trim();
  if (value.startsWith('*.')) value = value.slice(2);
  if (!value || /\s/.test(value)) return '';
  let host: string;
  try {
    host = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`).hostname;
  } catch {
    return '';
  }
  host = host.replace(/\.$/, '');
  return /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(host) ? host : '';
}

/** Split a typed list ("a.com, b.org c.net") into unique normalised domains, dropping junk. */
export function parseDomainList(input: string): string[] {
  const seen = new Set<string>();
  for (const token of input.split(/[\s,;]+/)) {
    const domain = normaliseDomain(token);
    if (domain) seen.add(domain);
  }
  return [...seen];
}

/** The typed entries that are not host names, to show next to the field instead of dropping them. */
export function invalidDomainTokens(input: string): string[] {
  return input
    .split(/[\s,;]+/)
    .filter((token) => token && !normaliseDomain(token));
}

function unique<T>(values: T[]): T[] {
  return [...new Set(values)];
}

export function stateFromParams(params: URLSearchParams): SearchState {
  const mode = params.get('mode') ?? '';
  const page = Number(params.get('page') ?? '1');
  const from = params.get('from') ?? '';
  const to = params.get('to') ?? '';
  const lang = (params.get('lang') ?? '').trim().toLowerCase();
  const include: string[] = [];
  const exclude: string[] = [];
  for (const raw of params.getAll('domain')) {
    const excluded = raw.trim().startsWith('-');
    const domain = normaliseDomain(excluded ? raw.trim().slice(1) : raw);
    if (domain) (excluded ? exclude : include).push(domain);
  }
  return {
    q: (params.get('q') ?? '').trim(),
    mode: (SEARCH_MODES as readonly string[]).includes(mode) ? (mode as SearchMode) : DEFAULT_SEARCH.mode,
    from: isIsoDate(from) ? from : '',
    to: isIsoDate(to) ? to : '',
    includeDomains: unique(include),
    excludeDomains: unique(exclude.filter((domain) => !include.includes(domain))),
    fileTypes: unique(
      params.getAll('filetype').filter((t): t is FileType => (FILE_TYPES as readonly string[]).includes(t)),
    ),
    lang: /^[a-z]{2,3}$/.test(lang) ? lang : '',
    page: Number.isInteger(page) && page >= 1 && page <= MAX_PAGE ? page : 1,
  };
}

/**
 * The state as query parameters, defaults left out, in a fixed order: the page's URL and the API
 * request use the same string, so equal searches give equal URLs (and React Query-style caches hit).
 */
export function stateToParams(state: SearchState): URLSearchParams {
  const params = new URLSearchParams();
  if (state.q.trim()) params.set('q', state.q.trim());
  if (state.mode !== DEFAULT_SEARCH.mode) params.set('mode', state.mode);
  if (state.from) params.set('from', state.from);
  if (state.to) params.set('to', state.to);
  for (const domain of state.includeDomains) params.append('domain', domain);
  for (const domain of state.excludeDomains) params.append('domain', `-${domain}`);
  for (const type of state.fileTypes) params.append('filetype', type);
  if (state.lang) params.set('lang', state.lang);
  if (state.page > 1) params.set('page', String(state.page));
  return params;
}

/** The API URL for a state, or null when there is nothing to search for. */
export function searchApiPath(state: SearchState): string | null {
  if (!state.q.trim()) return null;
  return `/api/v1/search?${stateToParams(state).toString()}`;
}

/** How many filters narrow the search (shown on the collapsed filter panel). */
export function activeFilterCount(state: SearchState): number {
  return (
    (state.from ? 1 : 0) +
    (state.to ? 1 : 0) +
    state.includeDomains.length +
    state.excludeDomains.length +
    state.fileTypes.length +
    (state.lang ? 1 : 0)
  );
}

/** A problem with the filters that the server would refuse anyway; shown next to the date fields. */
export function dateRangeError(state: Pick<SearchState, 'from' | 'to'>): string | null {
  if (state.from && state.to && state.from > state.to) return 'The start date is after the end date.';
  return null;
}
