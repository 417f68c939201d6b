import { describe, expect, it } from 'vitest';
import { decodeEntities, parseSnippet, snippetText } from './highlight';

describe('parseSnippet', () => {
  it('splits tantivy/ts_headline <b> markers into highlighted parts', () => {
    expect(parseSnippet('The <b>quick</b> brown <b>fox</b>')).toEqual([
      { text: 'The ', highlighted: false },
      { text: 'quick', highlighted: true },
      { text: ' brown ', highlighted: false },
      { text: 'fox', highlighted: true },
    ]);
  });

  it('accepts <mark> and upper-case markers', () => {
    expect(parseSnippet('a <MARK>b</MARK> <mark>c</mark>')).toEqual([
      { text: 'a ', highlighted: false },
      { text: 'b', highlighted: true },
      { text: ' ', highlighted: false },
      { text: 'c', highlighted: true },
    ]);
  });

  it('merges adjacent highlights and drops empty parts', () => {
    expect(parseSnippet('<b>new</b><b> york</b><b></b> city')).toEqual([
      { text: 'new york', highlighted: true },
      { text: ' city', highlighted: false },
    ]);
  });

  it('handles a highlight cut off at either end of the snippet', () => {
    expect(parseSnippet('ending</b> here and <b>starting')).toEqual([
      { text: 'ending here and ', highlighted: false },
      { text: 'starting', highlighted: true },
    ]);
  });

  it('keeps nested markers highlighted until the outer one closes', () => {
    expect(parseSnippet('<b>a <b>b</b> c</b> d')).toEqual([
      { text: 'a b c', highlighted: true },
      { text: ' d', highlighted: false },
    ]);
  });

  it('decodes escaped text after splitting, so escaped markers stay literal text', () => {
    expect(parseSnippet('use &lt;b&gt; for <b>bold</b> &amp; more')).toEqual([
      { text: 'use <b> for ', highlighted: false },
      { text: 'bold', highlighted: true },
      { text: ' & more', highlighted: false },
    ]);
  });

  it('leaves any other markup as inert text', () => {
    const parts = parseSnippet('<img src=x onerror="alert(1)"><b>hit</b><script>x()</script>');
    expect(parts).toEqual([
      { text: '<img src=x onerror="alert(1)">', highlighted: false },
      { text: 'hit', highlighted: true },
      { text: '<script>x()</script>', highlighted: false },
    ]);
  });

  it('returns no parts for an empty snippet', () => {
    expect(parseSnippet('')).toEqual([]);
  });

  it('handles multilingual text', () => {
    expect(parseSnippet('東京の<b>天気</b>予報 — <b>ภาษาไทย</b>')).toEqual([
      { text: '東京の', highlighted: false },
      { text: '天気', highlighted: true },
      { text: '予報 — ', highlighted: false },
      { text: 'ภาษาไทย', highlighted: true },
    ]);
  });
});

describe('decodeEntities', () => {
  it('decodes named and numeric entities', () => {
    expect(decodeEntities('&quot;a&quot; &#39;b&#39; &#x263A; &apos;&nbsp;')).toBe("\"a\" 'b' \u263a '\u00a0");
  });

  it('keeps unknown and invalid entities as they are', () => {
    expect(decodeEntities('&bogus; &#0; &#xD800; &#99999999; & alone')).toBe(
      '&bogus; &#0; &#xD800; &#99999999; & alone',
    );
  });
});

describe('snippetText', () => {
  it('is the snippet without markers', () => {
    expect(snippetText('a <b>b</b> &amp; c')).toBe('a b & c');
  });
});
