/**
 * Credibility (FR-SEA-004): a 0–100 score and the signals behind it. The breakdown's exact shape is
 * the search backend's; we accept a number per signal or an object carrying one (value, score,
 * points, contribution) plus an optional weight, and show signals by their human names.
 */
import type { Credibility } from './types';

export type CredibilityLevel = 'high' | 'medium' | 'low';

export interface BreakdownRow {
  key: string;
  label: string;
  value: string;
}

const SIGNAL_LABELS: Record<string, string> = {
  pagerank: 'Link authority (PageRank)',
  link_authority: 'Link authority (PageRank)',
  authority: 'Link authority',
  https: 'HTTPS',
  publisher: 'Known publisher',
  known_publisher: 'Known publisher',
  author: 'Named author',
  date: 'Publication date given',
  date_metadata: 'Publication date given',
  metadata: 'Author and date metadata',
  freshness: 'Freshness',
  agreement: 'Agreement with other sources',
  corroboration: 'Agreement with other sources',
  domain_reputation: 'Domain reputation',
  reputation: 'Domain reputation',
};

export function signalLabel(key: string): string {
  const known = SIGNAL_LABELS[key.toLowerCase()];
  if (known) return known;
  const words = key.replace(/[_-]+/g, ' ').replace(/([a-z])([A-Z])/g, '$1 $2').trim().toLowerCase();
  return words ? words[0]!.toUpperCase() + words.slice(1) : key;
}

export function credibilityLevel(score: number): CredibilityLevel {
  if (score >= 70) return 'high';
  if (score >= 40) return 'medium';
  return 'low';
}

const format = new Intl.NumberFormat('en', { maximumFractionDigits: 2 });

function signalValue(raw: unknown): string | null {
  if (typeof raw === 'number' && Number.isFinite(raw)) return format.format(raw);
  if (typeof raw === 'boolean') return raw ? 'yes' : 'no';
  if (typeof raw === 'string') return raw;
  if (raw !== null && typeof raw === 'object') {
    const record = raw as Record<string, unknown>;
    const main = ['points', 'contribution', 'score', 'value'].map((key) => record[key]).find((v) => typeof v === 'number');
    const weight = record.weight;
    if (typeof main === 'number') {
      return typeof weight === 'number' ? `${format.format(main)} (weight ${format.format(weight)})` : format.format(main);
    }
  }
  return null;
}

/** The breakdown as rows in the server's order; signals we cannot read are left out. */
export function breakdownRows(credibility: Credibility): BreakdownRow[] {
  const rows: BreakdownRow[] = [];
  const breakdown = credibility.breakdown ?? {};
  for (const [key, raw] of Object.entries(breakdown)) {
    const value = signalValue(raw);
    if (value !== null) rows.push({ key, label: signalLabel(key), value });
  }
  return rows;
}

/** 0–100, rounded; out-of-range or missing scores are clamped so a badge never shows nonsense. */
export function displayScore(credibility: Credibility | null): number | null {
  if (!credibility || typeof credibility.score !== 'number' || !Number.isFinite(credibility.score)) return null;
  return Math.round(Math.min(100, Math.max(0, credibility.score)));
}
