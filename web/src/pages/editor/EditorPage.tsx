import { PageHeader } from '../../components/PageHeader';

/** Placeholder from the web scaffold; the editor helper replaces it. */
export default function EditorPage() {
  return (
    <>
      <PageHeader title="Image editor" />
      <p>This page is being built.</p>
    </>
  );
}
