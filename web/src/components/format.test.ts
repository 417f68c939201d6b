import { formatDuration, formatReset } from './format';

describe('formatDuration', () => {
  it('reads naturally from seconds to hours', () => {
    expect(formatDuration(45)).toBe('45 s');
    expect(formatDuration(150)).toBe('2 min 30 s');
    expect(formatDuration(890)).toBe('14 min');
    expect(formatDuration(3 * 3600 + 20 * 60)).toBe('3 h 20 min');
    expect(formatDuration(7200)).toBe('2 h');
    expect(formatDuration(-5)).toBe('0 s');
  });
});

describe('formatReset', () => {
  it('gives the clock time and how long until then', () => {
    const now = Date.UTC(2026, 0, 1, 22, 40);
    const text = formatReset(new Date(Date.UTC(2026, 0, 2, 0, 0)), now);
    expect(text).toMatch(/\(in 1 h 20 min\)$/);
  });
});
