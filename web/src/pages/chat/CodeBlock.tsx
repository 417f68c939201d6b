import { keyboardScrollable } from './scrollable';
import { useEffect, useId, useMemo, useState } from 'react';
import { Fragment, jsx, jsxs } from 'react/jsx-runtime';
import { toJsxRuntime } from 'hast-util-to-jsx-runtime';
import { api } from '../../api/client';
import { announce } from '../../components/announce';
import { Button } from '../../components/Button';
import { ErrorMessage } from '../../components/ErrorMessage';
import { highlightTree, loadLanguage } from './highlight';
import { useSandboxLanguages } from './sandboxLanguages';

interface RunResult {
  status: string;
  exit_code: number | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
  duration_s: number;
  build_output?: string | null;
}

const STATUS_TEXT: Record<string, string> = {
  ok: 'Finished',
  error: 'Exited with an error',
  compile_error: 'Did not compile',
  timeout: 'Stopped: took too long',
  killed: 'Killed (a limit was reached)',
  output_limit: 'Stopped: too much output',
};

async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

/** A fenced code block: highlighted once its grammar has loaded, with Copy and (sandbox languages) Run. */
export function CodeBlock({ language, code }: { language: string; code: string }) {
  const [loaded, setLoaded] = useState(0);
  const [copied, setCopied] = useState<'idle' | 'copied' | 'failed'>('idle');
  const [running, setRunning] = useState(false);
  const [result, setResult] = useState<RunResult | null>(null);
  const [runError, setRunError] = useState<unknown>(null);
  const sandbox = useSandboxLanguages();
  const outputId = useId();
  const runLanguage = language ? sandbox.resolve(language) : null;

  useEffect(() => {
    if (!language) return;
    let live = true;
    void loadLanguage(language).then((ok) => {
      if (ok && live) setLoaded((n) => n + 1);
    });
    return () => {
      live = false;
    };
  }, [language]);

  const highlighted = useMemo(() => {
    if (!language || loaded === 0) return null;
    try {
      const tree = highlightTree(language, code);
      return tree ? toJsxRuntime(tree, { Fragment, jsx, jsxs }) : null;
    } catch {
      return null;
    }
  }, [language, code, loaded]);

  const copy = async () => {
    const ok = await copyText(code);
    setCopied(ok ? 'copied' : 'failed');
    announce(ok ? 'Code copied' : 'Could not copy: the browser refused clipboard access');
    window.setTimeout(() => setCopied('idle'), 2000);
  };

  const run = async () => {
    if (!runLanguage) return;
    setRunning(true);
    setRunError(null);
    setResult(null);
    try {
      const answer = await api<RunResult>('/api/v1/sandbox/run', { json: { language: runLanguage, code } });
      setResult(answer);
      announce(`${STATUS_TEXT[answer.status] ?? answer.status}${answer.exit_code !== null ? `, exit code ${answer.exit_code}` : ''}`);
    } catch (error) {
      setRunError(error);
    } finally {
      setRunning(false);
    }
  };

  const label = language || 'text';
  return (
    <figure className="code-block">
      <figcaption className="code-block-bar">
        <span className="code-block-lang">{label}</span>
        <span className="code-block-actions">
          <Button size="small" variant="ghost" onClick={() => void copy()} aria-label={`Copy ${label} code`}>
            {copied === 'copied' ? 'Copied' : copied === 'failed' ? 'Copy failed' : 'Copy'}
          </Button>
          {runLanguage && (
            <Button size="small" variant="ghost" busy={running} onClick={() => void run()} aria-label={`Run ${label} code`} aria-controls={outputId}>
              Run
            </Button>
          )}
        </span>
      </figcaption>
      {/* A scrollable region must be reachable by keyboard (tabIndex) and named. */}
      <pre {...keyboardScrollable} aria-label={`${label} code`}>
        <code className={`hljs${language ? ` language-${language}` : ''}`}>{highlighted ?? code}</code>
      </pre>
      <div id={outputId} className="code-run" aria-live="polite">
        {runError !== null && <ErrorMessage error={runError} />}
        {result && (
          <div className="code-run-result">
            <p className={`code-run-status code-run-${result.status}`}>
              {STATUS_TEXT[result.status] ?? result.status}
              {result.exit_code !== null && ` (exit code ${result.exit_code})`} in {result.duration_s.toFixed(2)} s
              {result.truncated && ', output cut at the limit'}
            </p>
            {result.build_output ? <pre className="code-run-output" {...keyboardScrollable} aria-label="Compiler output">{result.build_output}</pre> : null}
            {result.stdout || result.stderr ? (
              <pre className="code-run-output" {...keyboardScrollable} aria-label="Program output">
                {result.stdout}
                {result.stderr && <span className="code-run-stderr">{result.stderr}</span>}
              </pre>
            ) : (
              <p className="muted">No output.</p>
            )}
          </div>
        )}
      </div>
    </figure>
  );
}
