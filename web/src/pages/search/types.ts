/**
 * `GET /api/v1/search` as issue 8 specifies it: `{"results": [{url, title, snippet, lang, published,
 * credibility: {score, breakdown}, snapshot_id}], "total", "took_ms"}`. The backend lives on another
 * branch, so the optional fields (site, retrieved_at, filetype, page, per_page) are read when present
 * and never required.
 */
export interface Credibility {
  /** 0–100. */
  score: number;
  /** Signal name → its contribution (a number, or an object with e.g. value/weight/points). */
  breakdown: Record<string, unknown>;
}

export interface SearchResult {
  url: string;
  title: string;
  /** Query terms wrapped in <b>…</b> or <mark>…</mark>; the rest HTML-escaped (see highlight.ts). */
  snippet: string;
  /** ISO 639-1, "" when unknown. */
  lang: string;
  /** ISO 8601 or null. */
  published: string | null;
  credibility: Credibility | null;
  snapshot_id: string | null;
  site?: string;
  retrieved_at?: string;
  filetype?: string;
}

export interface SearchResponse {
  results: SearchResult[];
  total: number;
  took_ms: number;
  page?: number;
  per_page?: number;
}

/** `GET /api/v1/search/snapshots/{id}`: the text as extracted at crawl time. */
export interface Snapshot {
  id?: string;
  url?: string;
  title?: string;
  text?: string;
  fetched_at?: string;
  retrieved_at?: string;
  published?: string | null;
}

/** Results per page when the server does not say (issue 8 leaves the page size to the server). */
export const DEFAULT_PAGE_SIZE = 10;
