/**
 * Syntax highlighting with lowlight (highlight.js grammars, 190+ languages) producing a syntax tree
 * that React renders as elements: no HTML strings, nothing injected. Each grammar is its own small
 * chunk, loaded the first time a code block in that language appears.
 */
import { createLowlight } from 'lowlight';
import type { Root } from 'hast';
import type { LanguageFn } from 'highlight.js';

const lowlight = createLowlight();

const grammars = import.meta.glob<{ default: LanguageFn }>([
  '../../../node_modules/highlight.js/es/languages/*.js',
  '!../../../node_modules/highlight.js/es/languages/*.js.js',
]);
const byName = new Map<string, () => Promise<{ default: LanguageFn }>>();
for (const [path, load] of Object.entries(grammars)) {
  const name = path.slice(path.lastIndexOf('/') + 1, -'.js'.length);
  byName.set(name, load);
}

/** Common fence names that are aliases inside a grammar file of another name. */
const ALIASES: Record<string, string> = {
  js: 'javascript', jsx: 'javascript', mjs: 'javascript', cjs: 'javascript', node: 'javascript',
  ts: 'typescript', tsx: 'typescript', py: 'python', python3: 'python', sh: 'bash', zsh: 'bash',
  'c++': 'cpp', cc: 'cpp', cxx: 'cpp', hpp: 'cpp', h: 'c', cs: 'csharp', 'c#': 'csharp', rb: 'ruby',
  rs: 'rust', golang: 'go', kt: 'kotlin', kts: 'kotlin', yml: 'yaml', md: 'markdown', html: 'xml',
  xhtml: 'xml', svg: 'xml', htm: 'xml', ps1: 'powershell', ps: 'powershell', docker: 'dockerfile',
  tf: 'hcl', hs: 'haskell', ex: 'elixir', exs: 'elixir', erl: 'erlang', pl: 'perl', pm: 'perl',
  jl: 'julia', m: 'objectivec', mm: 'objectivec', objc: 'objectivec', vb: 'vbnet', toml: 'ini',
  gql: 'graphql', proto: 'protobuf', console: 'shell', jsonc: 'json', patch: 'diff', make: 'makefile',
  mk: 'makefile', ml: 'ocaml', clj: 'clojure', sol: 'solidity', psql: 'pgsql', postgres: 'pgsql',
};

export function grammarName(language: string): string {
  const lower = language.toLowerCase();
  return ALIASES[lower] ?? lower;
}

/** How many languages can be highlighted (for the docs and a test). */
export function languageCount(): number {
  return byName.size;
}

const loading = new Map<string, Promise<boolean>>();

/** Load the grammar for a fence name; resolves false for a language highlight.js does not know. */
export function loadLanguage(language: string): Promise<boolean> {
  const name = grammarName(language);
  if (lowlight.registered(name)) return Promise.resolve(true);
  const load = byName.get(name);
  if (!load) return Promise.resolve(false);
  let pending = loading.get(name);
  if (!pending) {
    pending = load().then(
      (module) => {
        lowlight.register(name, module.default);
        return true;
      },
      () => {
        loading.delete(name); // a failed chunk load is retried next time
        return false;
      },
    );
    loading.set(name, pending);
  }
  return pending;
}

/** The highlighted tree, or null when the language is not loaded (yet). */
export function highlightTree(language: string, code: string): Root | null {
  const name = grammarName(language);
  if (!lowlight.registered(name)) return null;
  return lowlight.highlight(name, code);
}
