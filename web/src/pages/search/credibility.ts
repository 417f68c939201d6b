/**
 * Credibility (FR-SEA-004): the API's 0–100 score and its breakdown, one entry per signal
 * `{value: 0..1, weight, points = value × weight}`, the weights summing to 100 (docs/search.md).
 * Rows show each signal's points out of its weight, under a readable name.
 */
import type { Credibility, SignalPoints } from './types';

export type CredibilityLevel = 'high' | 'medium' | 'low';

export interface BreakdownRow {
  key: string;
  label: string;
  /** "27.9 of 30" */
  value: string;
}

/** The backend's six signals (src/fimum_ai/search/credibility.py WEIGHTS), named for readers. */
const SIGNAL_LABELS: Record<string, string> = {
  authority: 'Link authority (PageRank)',
  reputation: 'Domain reputation',
  agreement: 'Agreement with other sites',
  freshness: 'Freshness',
  metadata: 'Author, publisher and date given',
  https: 'Served over HTTPS',
};

export function signalLabel(key: string): string {
  const known = SIGNAL_LABELS[key.toLowerCase()];
  if (known) return known;
  // A signal added to the backend later still shows, humanised.
  const words = key.replace(/[_-]+/g, ' ').replace(/([a-z])([A-Z])/g, '$1 $2').trim().toLowerCase();
  return words ? words[0]!.toUpperCase() + words.slice(1) : key;
}

export function credibilityLevel(score: number): CredibilityLevel {
  if (score >= 70) return 'high';
  if (score >= 40) return 'medium';
  return 'low';
}

const format = new Intl.NumberFormat('en', { maximumFractionDigits: 1 });

function isSignal(raw: unknown): raw is SignalPoints {
  if (raw === null || typeof raw !== 'object') return false;
  const { points, weight } = raw as Record<string, unknown>;
  return typeof points === 'number' && Number.isFinite(points) && typeof weight === 'number' && Number.isFinite(weight);
}

/** The breakdown as rows in the server's order; an entry without points and weight is left out. */
export function breakdownRows(credibility: Credibility): BreakdownRow[] {
  const rows: BreakdownRow[] = [];
  for (const [key, raw] of Object.entries(credibility.breakdown ?? {})) {
    if (isSignal(raw)) rows.push({ key, label: signalLabel(key), value: `${format.format(raw.points)} of ${format.format(raw.weight)}` });
  }
  return rows;
}

/** 0–100, rounded; out-of-range or missing scores are clamped so a badge never shows nonsense. */
export function displayScore(credibility: Credibility | null | undefined): number | null {
  if (!credibility || typeof credibility.score !== 'number' || !Number.isFinite(credibility.score)) return null;
  return Math.round(Math.min(100, Math.max(0, credibility.score)));
}
