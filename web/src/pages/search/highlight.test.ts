import { describe, expect, it } from 'vitest';
import { decodeEntities, parseSnippet, snippetText } from './highlight';

describe('parseSnippet', () => {
  it("splits the API's <mark> markers into highlighted parts", () => {
    expect(parseSnippet('The <mark>quick</mark> brown <mark>fox</mark>')).toEqual([
      { text: 'The ', highlighted: false },
      { text: 'quick', highlighted: true },
      { text: ' brown ', highlighted: false },
      { text: 'fox', highlighted: true },
    ]);
  });

  it('accepts upper-case markers and leaves other tags such as <b> as text', () => {
    expect(parseSnippet('a <MARK>b</MARK> <b>c</b>')).toEqual([
      { text: 'a ', highlighted: false },
      { text: 'b', highlighted: true },
      { text: ' <b>c</b>', highlighted: false },
    ]);
  });

  it('merges adjacent highlights and drops empty parts', () => {
    expect(parseSnippet('<mark>new</mark><mark> york</mark><mark></mark> city')).toEqual([
      { text: 'new york', highlighted: true },
      { text: ' city', highlighted: false },
    ]);
  });

  it('handles a highlight cut off at either end of the snippet', () => {
    expect(parseSnippet('ending</mark> here and <mark>starting')).toEqual([
      { text: 'ending here and ', highlighted: false },
      { text: 'starting', highlighted: true },
    ]);
  });

  it('keeps nested markers highlighted until the outer one closes', () => {
    expect(parseSnippet('<mark>a <mark>b</mark> c</mark> d')).toEqual([
      { text: 'a b c', highlighted: true },
      { text: ' d', highlighted: false },
    ]);
  });

  it('decodes escaped text after splitting, so escaped markers stay literal text', () => {
    expect(parseSnippet('use &lt;mark&gt; for <mark>bold</mark> &amp; more')).toEqual([
      { text: 'use <mark> for ', highlighted: false },
      { text: 'bold', highlighted: true },
      { text: ' & more', highlighted: false },
    ]);
  });

  it('leaves any other markup as inert text', () => {
    const parts = parseSnippet('<img src=x onerror="alert(1)"><mark>hit</mark><script>x()</script>');
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
    expect(parseSnippet('東京の<mark>天気</mark>予報 — <mark>ภาษาไทย</mark>')).toEqual([
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
    expect(snippetText('a <mark>b</mark> &amp; c')).toBe('a b & c');
  });
});
