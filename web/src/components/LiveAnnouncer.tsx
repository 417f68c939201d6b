import { useEffect, useState } from 'react';
import { setAnnouncer } from './announce';

/** The live regions behind announce(). Mounted once, visually hidden. */
export function LiveAnnouncer() {
  const [polite, setPolite] = useState('');
  const [assertive, setAssertive] = useState('');

  useEffect(() => {
    let timer: number | undefined;
    setAnnouncer((message, politeness) => {
      const set = politeness === 'assertive' ? setAssertive : setPolite;
      // Clear first so the same message twice is announced twice.
      set('');
      window.clearTimeout(timer);
      timer = window.setTimeout(() => set(message), 50);
    });
    return () => {
      window.clearTimeout(timer);
      setAnnouncer(null);
    };
  }, []);

  return (
    <>
      <div className="visually-hidden" aria-live="polite" aria-atomic="true" data-testid="announcer-polite">
        {polite}
      </div>
      <div className="visually-hidden" aria-live="assertive" aria-atomic="true" data-testid="announcer-assertive">
        {assertive}
      </div>
    </>
  );
}
