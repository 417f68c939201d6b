/**
 * `GET /api/v1/search` as the search API serves it (docs/search.md, src/fimum_ai/search/routes.py):
 * `{"results": [...], "total", "took_ms"}`, 10 results a page (`search.page_size`), pages 1-100.
 */

/** One signal of the credibility score: `points = value × weight`, the weights summing to 100. */
export interface SignalPoints {
  /** 0..1 */
  value: number;
  weight: number;
  points: number;
}

export interface Credibility {
  /** 0–100. */
  score: number;
  /** Signal name (authority, reputation, agreement, freshness, metadata, https) → its share. */
  breakdown: Record<string, SignalPoints>;
}

export interface SearchResult {
  url: string;
  title: string;
  /** HTML-escaped text with the query words wrapped in <mark>…</mark> (see highlight.ts). */
  snippet: string;
  /** ISO 639-1, "" when unknown. */
  lang: string;
  /** ISO 8601 or null. */
  published: string | null;
  credibility: Credibility;
  snapshot_id: string;
  /** The page's host, as the domain filter matches it. */
  site: string;
  /** When the page was retrieved (ISO 8601). */
  fetched_at: string;
  /** html, pdf, docx or txt. */
  filetype: string;
}

export interface SearchResponse {
  results: SearchResult[];
  /** Documents matching (hybrid: keyword matches plus semantic-only candidates). */
  total: number;
  took_ms: number;
}

/** `GET /api/v1/search/snapshots/{id}`: the text as extracted at crawl time. */
export interface Snapshot {
  id: string;
  url: string;
  title: string;
  text: string;
  lang: string;
  filetype: string;
  published: string | null;
  fetched_at: string;
  author: string | null;
  publisher: string | null;
}

/** Results per page (`search.page_size`, the API does not send it). */
export const PAGE_SIZE = 10;
/** The API refuses pages above this (`page` is 1-100). */
export const MAX_PAGE = 100;
