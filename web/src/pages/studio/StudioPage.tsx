import { PageHeader } from '../../components/PageHeader';

/** Placeholder from the web scaffold; the studio helper replaces it. */
export default function StudioPage() {
  return (
    <>
      <PageHeader title="Image studio" />
      <p>This page is being built.</p>
    </>
  );
}
