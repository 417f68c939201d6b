import { useCallback, useEffect, useState } from 'react';
import { restoreForm, STORAGE_KEY, type StudioForm } from './studioForm';

function readStored(): StudioForm {
  try {
    return restoreForm(window.sessionStorage.getItem(STORAGE_KEY));
  } catch {
    return restoreForm(null); // storage disabled (privacy mode): start fresh
  }
}

/**
 * The studio form, kept in sessionStorage on every change: a reload, a trip to another page or a
 * failed request never loses what the user typed (it lives as long as the tab).
 */
export function useStudioForm() {
  const [form, setForm] = useState<StudioForm>(readStored);

  useEffect(() => {
    try {
      window.sessionStorage.setItem(STORAGE_KEY, JSON.stringify(form));
    } catch {
      // Quota or privacy mode: the form still works, it just is not kept.
    }
  }, [form]);

  const update = useCallback(<K extends keyof StudioForm>(key: K, value: StudioForm[K]) => {
    setForm((current) => (current[key] === value ? current : { ...current, [key]: value }));
  }, []);

  return { form, setForm, update };
}
