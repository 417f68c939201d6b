import { describe, expect, it } from 'vitest';
import {
  DEFAULT_SEARCH,
  activeFilterCount,
  dateRangeError,
  invalidDomainTokens,
  isIsoDate,
  normaliseDomain,
  parseDomainList,
  searchApiPath,
  stateFromParams,
  stateToParams,
  type SearchState,
} from './queryState';

const full: SearchState = {
  q: 'solar panels',
  mode: 'semantic',
  from: '2024-01-01',
  to: '2024-12-31',
  includeDomains: ['example.com', 'news.example.org'],
  excludeDomains: ['spam.test'],
  fileTypes: ['pdf', 'html'],
  lang: 'de',
  page: 3,
};

describe('stateFromParams / stateToParams', () => {
  it('round-trips every field', () => {
    expect(stateFromParams(stateToParams(full))).toEqual(full);
  });

  it("writes the API's parameter names, exclusions as -domain, repeated values repeated", () => {
    expect(stateToParams(full).toString()).toBe(
      'q=solar+panels&mode=semantic&from=2024-01-01&to=2024-12-31&domain=example.com' +
        '&domain=news.example.org&domain=-spam.test&filetype=pdf&filetype=html&lang=de&page=3',
    );
  });

  it('leaves defaults out of the URL', () => {
    expect(stateToParams({ ...DEFAULT_SEARCH, q: 'x' }).toString()).toBe('q=x');
    expect(stateToParams(DEFAULT_SEARCH).toString()).toBe('');
  });

  it('reads an empty query string as the default state', () => {
    expect(stateFromParams(new URLSearchParams())).toEqual(DEFAULT_SEARCH);
  });

  it('falls back to defaults for malformed values from a hand-edited URL', () => {
    const state = stateFromParams(
      new URLSearchParams(
        'q=%20x%20&mode=fuzzy&from=2024-02-30&to=yesterday&filetype=exe&filetype=pdf&filetype=pdf' +
          '&lang=<script>&page=-2&domain=not%20a%20domain&domain=-&domain=EXAMPLE.com',
      ),
    );
    expect(state).toEqual({
      ...DEFAULT_SEARCH,
      q: 'x',
      fileTypes: ['pdf'],
      includeDomains: ['example.com'],
    });
  });

  it('rejects fractional page numbers and pages past the API limit of 100', () => {
    expect(stateFromParams(new URLSearchParams('page=2.5')).page).toBe(1);
    expect(stateFromParams(new URLSearchParams('page=101')).page).toBe(1);
    expect(stateFromParams(new URLSearchParams('page=100')).page).toBe(100);
    expect(stateFromParams(new URLSearchParams('page=7')).page).toBe(7);
  });

  it('never both includes and excludes the same domain (include wins)', () => {
    const state = stateFromParams(new URLSearchParams('domain=a.com&domain=-a.com&domain=-b.com'));
    expect(state.includeDomains).toEqual(['a.com']);
    expect(state.excludeDomains).toEqual(['b.com']);
  });

  it('accepts ISO 639 codes lower-cased, and drops region tags the API refuses', () => {
    expect(stateFromParams(new URLSearchParams('lang=PT')).lang).toBe('pt');
    expect(stateFromParams(new URLSearchParams('lang=fil')).lang).toBe('fil');
    expect(stateFromParams(new URLSearchParams('lang=pt-br')).lang).toBe('');
  });
});

describe('searchApiPath', () => {
  it('is null without a query', () => {
    expect(searchApiPath({ ...full, q: '  ' })).toBeNull();
  });

  it("targets /api/v1/search with the page's parameters", () => {
    expect(searchApiPath({ ...DEFAULT_SEARCH, q: 'a&b', mode: 'keyword', page: 2 })).toBe(
      '/api/v1/search?q=a%26b&mode=keyword&page=2',
    );
  });
});

describe('domains', () => {
  it('normalises URLs and host names to a bare lower-case host', () => {
    expect(normaliseDomain(' https://WWW.Example.com:8443/path?x#y ')).toBe('www.example.com');
    expect(normaliseDomain('example.com.')).toBe('example.com');
    expect(normaliseDomain('*.example.com')).toBe('example.com');
    expect(normaliseDomain('127.0.0.1:8000')).toBe('127.0.0.1');
    expect(normaliseDomain('bücher.de')).toBe('xn--bcher-kva.de');
  });

  it('refuses what is not a host', () => {
    for (const junk of ['', '   ', 'a b', '-', 'exa_mple.com', 'http://', 'javascript:alert(1)']) {
      expect(normaliseDomain(junk), junk).toBe('');
    }
  });

  it('names the entries that are not hosts', () => {
    expect(invalidDomainTokens('a.com, not_a_host; b.org javascript:x')).toEqual(['not_a_host', 'javascript:x']);
    expect(invalidDomainTokens(' ,, ')).toEqual([]);
  });

  it('splits typed lists on commas, semicolons and spaces, without duplicates', () => {
    expect(parseDomainList('a.com, B.com;a.com  c.org,,')).toEqual(['a.com', 'b.com', 'c.org']);
  });
});

describe('validation helpers', () => {
  it('checks real calendar dates', () => {
    expect(isIsoDate('2024-02-29')).toBe(true);
    expect(isIsoDate('2023-02-29')).toBe(false);
    expect(isIsoDate('2024-1-01')).toBe(false);
  });

  it('reports a reversed date range', () => {
    expect(dateRangeError({ from: '2024-05-01', to: '2024-04-01' })).toMatch(/after/);
    expect(dateRangeError({ from: '2024-04-01', to: '2024-04-01' })).toBeNull();
    expect(dateRangeError({ from: '', to: '2024-04-01' })).toBeNull();
  });

  it('counts active filters', () => {
    expect(activeFilterCount(DEFAULT_SEARCH)).toBe(0);
    expect(activeFilterCount(full)).toBe(8);
  });
});
