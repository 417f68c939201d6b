import { PageHeader } from '../../components/PageHeader';

/** Placeholder from the web scaffold; the gallery helper (issue 8) replaces it. */
export default function SearchPage() {
  return (
    <>
      <PageHeader title="Search" />
      <p>This page is being built.</p>
    </>
  );
}
