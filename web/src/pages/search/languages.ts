/**
 * Languages offered by the filter (ISO 639-1; the index detects 50+, FR-SEA-003). Names come from the
 * browser's Intl.DisplayNames in the user's own language, so no translation table is shipped.
 */
export const LANGUAGE_CODES = [
  'af', 'am', 'ar', 'az', 'be', 'bg', 'bn', 'bs', 'ca', 'cs', 'cy', 'da', 'de', 'el', 'en', 'eo', 'es',
  'et', 'eu', 'fa', 'fi', 'fr', 'ga', 'gl', 'gu', 'he', 'hi', 'hr', 'hu', 'hy', 'id', 'is', 'it', 'ja',
  'ka', 'kk', 'km', 'kn', 'ko', 'lt', 'lv', 'mk', 'ml', 'mn', 'mr', 'ms', 'my', 'ne', 'nl', 'no', 'pa',
  'pl', 'pt', 'ro', 'ru', 'si', 'sk', 'sl', 'sq', 'sr', 'sv', 'sw', 'ta', 'te', 'th', 'tl', 'tr', 'uk',
  'ur', 'uz', 'vi', 'zh',
] as const;

let displayNames: Intl.DisplayNames | null | undefined;

/** "de" → "German" (or "Deutsch" for a German browser); the code itself when unknown. */
export function languageName(code: string): string {
  if (!code) return 'Unknown language';
  if (displayNames === undefined) {
    try {
      displayNames = new Intl.DisplayNames(typeof navigator === 'undefined' ? ['en'] : [...navigator.languages, 'en'], {
        type: 'language',
      });
    } catch {
      displayNames = null;
    }
  }
  try {
    return displayNames?.of(code) ?? code;
  } catch {
    return code;
  }
}

/** The filter's options sorted by name as the user reads them. */
export function languageOptions(): { code: string; name: string }[] {
  return LANGUAGE_CODES.map((code) => ({ code, name: languageName(code) })).sort((a, b) => a.name.localeCompare(b.name));
}
