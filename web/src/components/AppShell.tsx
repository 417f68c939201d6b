import { Suspense, useEffect, useRef, useState } from 'react';
import { NavLink, Outlet, useLocation } from 'react-router';
import { useAuth } from '../auth/AuthContext';
import { Button } from './Button';
import { LiveAnnouncer } from './LiveAnnouncer';
import { Spinner } from './Spinner';

interface NavItem {
  to: string;
  label: string;
  /** Not built yet: shown, marked "soon". */
  soon?: boolean;
  /** Shown to signed-out visitors too. */
  isPublic?: boolean;
  end?: boolean;
}

export const NAV_ITEMS: NavItem[] = [
  { to: '/chat', label: 'Chat' },
  { to: '/images', label: 'Images', end: true },
  { to: '/images/edit', label: 'Edit' },
  { to: '/gallery', label: 'Gallery' },
  { to: '/search', label: 'Search' },
  { to: '/account', label: 'Account' },
  { to: '/about', label: 'About', isPublic: true },
];

/** Header with navigation, the live regions, and the routed page in <main>. */
export function AppShell() {
  const { user, status, logout } = useAuth();
  const [menuOpen, setMenuOpen] = useState(false);
  const mainRef = useRef<HTMLElement>(null);
  const location = useLocation();
  const firstRender = useRef(true);

  // After client-side navigation, move focus to the new page (as a full page load would) and close
  // the phone menu. Not on the first render: the browser already starts at the top.
  useEffect(() => {
    if (firstRender.current) {
      firstRender.current = false;
      return;
    }
    setMenuOpen(false);
    mainRef.current?.focus({ preventScroll: false });
  }, [location.pathname]);

  const who = user?.user.email ?? user?.user.phone ?? '';
  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <NavLink to="/images" className="brand">
          <span className="brand-mark" aria-hidden="true">
            F
          </span>
          <span className="brand-name">Fimum AI</span>
        </NavLink>
        <Button
          className="nav-toggle"
          variant="ghost"
          aria-expanded={menuOpen}
          aria-controls="primary-nav"
          onClick={() => setMenuOpen((open) => !open)}
        >
          <span aria-hidden="true">☰</span> Menu
        </Button>
        <nav id="primary-nav" aria-label="Main" className={menuOpen ? 'nav nav-open' : 'nav'}>
          <ul>
            {NAV_ITEMS.filter((item) => status === 'signed-in' || item.isPublic).map((item) => (
              <li key={item.to}>
                <NavLink to={item.to} end={item.end} className={({ isActive }) => (isActive ? 'nav-link active' : 'nav-link')}>
                  {item.label}
                  {item.soon && <span className="badge">soon</span>}
                </NavLink>
              </li>
            ))}
          </ul>
          {status === 'signed-out' && location.pathname !== '/login' && (
            <div className="nav-user">
              <NavLink to="/login" className="btn btn-primary btn-small">
                Sign in
              </NavLink>
            </div>
          )}
          {status === 'signed-in' && (
            <div className="nav-user">
              <span className="nav-user-name" title={who}>
                {who}
              </span>
              <span className="badge badge-tier">{user?.tier}</span>
              <Button variant="ghost" size="small" onClick={() => void logout()}>
                Sign out
              </Button>
            </div>
          )}
        </nav>
      </header>
      <main id="main" ref={mainRef} tabIndex={-1} className="main">
        <Suspense fallback={<Spinner label="Loading page" />}>
          <Outlet />
        </Suspense>
      </main>
      <LiveAnnouncer />
    </div>
  );
}
