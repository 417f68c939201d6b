import { lazy } from 'react';
import { Route, Routes } from 'react-router';
import { RequireAuth } from './auth/RequireAuth';
import { AppShell } from './components/AppShell';

// Every page is its own chunk: the first load carries the shell only (initial JS budget 250 kB gz).
const LoginPage = lazy(() => import('./pages/login/LoginPage'));
const ChatPage = lazy(() => import('./pages/chat/ChatPage'));
const StudioPage = lazy(() => import('./pages/studio/StudioPage'));
const EditorPage = lazy(() => import('./pages/editor/EditorPage'));
const GalleryPage = lazy(() => import('./pages/gallery/GalleryPage'));
const GalleryDetailPage = lazy(() => import('./pages/gallery/GalleryDetailPage'));
const SearchPage = lazy(() => import('./pages/search/SearchPage'));
const AccountPage = lazy(() => import('./pages/account/AccountPage'));
const AboutPage = lazy(() => import('./pages/about/AboutPage'));
const NotFoundPage = lazy(() => import('./pages/notfound/NotFoundPage'));

function signedIn(page: React.ReactNode) {
  return <RequireAuth>{page}</RequireAuth>;
}

export default function App() {
  return (
    <Routes>
      <Route element={<AppShell />}>
        <Route index element={signedIn(<StudioPage />)} />
        <Route path="login" element={<LoginPage />} />
        <Route path="chat" element={signedIn(<ChatPage />)} />
        <Route path="images" element={signedIn(<StudioPage />)} />
        <Route path="images/edit" element={signedIn(<EditorPage />)} />
        <Route path="gallery" element={signedIn(<GalleryPage />)} />
        <Route path="gallery/:id" element={signedIn(<GalleryDetailPage />)} />
        <Route path="search" element={signedIn(<SearchPage />)} />
        <Route path="account" element={signedIn(<AccountPage />)} />
        <Route path="about" element={<AboutPage />} />
        <Route path="*" element={<NotFoundPage />} />
      </Route>
    </Routes>
  );
}
