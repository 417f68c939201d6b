import { useEffect, useState } from 'react';
import { api } from '../../api/client';

interface SandboxLanguage {
  id: string;
  name: string;
  aliases: string[];
}

interface LanguagesResponse {
  available: boolean;
  languages: SandboxLanguage[];
}

/** Fence name (lower case) -> sandbox language id; fetched once per page load, shared by every block. */
let table: Promise<Map<string, string>> | null = null;

function fetchTable(): Promise<Map<string, string>> {
  if (!table) {
    table = api<LanguagesResponse>('/api/v1/sandbox/languages').then(
      (answer) => {
        const map = new Map<string, string>();
        if (!answer.available) return map;
        for (const language of answer.languages) {
          for (const name of [language.id, ...(language.aliases ?? [])]) map.set(name.toLowerCase(), language.id);
        }
        return map;
      },
      () => {
        table = null; // try again on the next block
        return new Map<string, string>();
      },
    );
  }
  return table;
}

/** Which fenced languages the sandbox can run (no Run button until this is known). */
export function useSandboxLanguages(): { resolve: (fence: string) => string | null } {
  const [map, setMap] = useState<Map<string, string> | null>(null);
  useEffect(() => {
    let live = true;
    void fetchTable().then((value) => live && setMap(value));
    return () => {
      live = false;
    };
  }, []);
  return { resolve: (fence) => map?.get(fence.toLowerCase()) ?? null };
}
