/** Voice input through the Web Speech API, where the browser has it. */
import { useCallback, useEffect, useRef, useState } from 'react';

interface RecognitionResultEvent {
  resultIndex: number;
  results: ArrayLike<{ isFinal: boolean; 0: { transcript: string } }>;
}

interface Recognition {
  lang: string;
  continuous: boolean;
  interimResults: boolean;
  onresult: ((event: RecognitionResultEvent) => void) | null;
  onerror: ((event: { error: string }) => void) | null;
  onend: (() => void) | null;
  start(): void;
  stop(): void;
}

type RecognitionConstructor = new () => Recognition;

function recognitionClass(): RecognitionConstructor | null {
  const scope = window as unknown as { SpeechRecognition?: RecognitionConstructor; webkitSpeechRecognition?: RecognitionConstructor };
  return scope.SpeechRecognition ?? scope.webkitSpeechRecognition ?? null;
}

export const VOICE_SHORTCUT = 'Control+Shift+M';

const ERRORS: Record<string, string> = {
  'not-allowed': 'Microphone access was refused.',
  'service-not-allowed': 'This browser does not allow speech recognition here.',
  network: 'The browser’s speech service could not be reached.',
  'no-speech': 'No speech was heard.',
  'audio-capture': 'No microphone was found.',
};

/** `unsupported` names why voice input is off (the button says it); `onText` gets final phrases. */
export function useVoiceInput(onText: (text: string) => void) {
  const Constructor = typeof window === 'undefined' ? null : recognitionClass();
  const [listening, setListening] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const recognition = useRef<Recognition | null>(null);
  const callback = useRef(onText);
  useEffect(() => {
    callback.current = onText;
  }, [onText]);

  const toggle = useCallback(() => {
    if (!Constructor) return;
    if (recognition.current) {
      recognition.current.stop();
      return;
    }
    const instance = new Constructor();
    instance.lang = document.documentElement.lang || navigator.language || 'en';
    instance.continuous = true;
    instance.interimResults = false;
    instance.onresult = (event) => {
      for (let i = event.resultIndex; i < event.results.length; i += 1) {
        const result = event.results[i];
        if (result?.isFinal) callback.current(result[0].transcript.trim());
      }
    };
    instance.onerror = (event) => setError(ERRORS[event.error] ?? `Voice input failed (${event.error}).`);
    instance.onend = () => {
      recognition.current = null;
      setListening(false);
    };
    recognition.current = instance;
    setError(null);
    try {
      instance.start();
      setListening(true);
    } catch {
      recognition.current = null;
      setError('Voice input could not start.');
    }
  }, [Constructor]);

  useEffect(() => () => recognition.current?.stop(), []);

  return {
    supported: Constructor !== null,
    unsupportedReason: Constructor ? null : 'Voice input is unavailable: this browser has no speech recognition (Web Speech API).',
    listening,
    error,
    toggle,
  };
}
