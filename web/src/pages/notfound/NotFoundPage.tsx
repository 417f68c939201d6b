import { Link, useLocation } from 'react-router';
import { PageHeader } from '../../components/PageHeader';

export default function NotFoundPage() {
  const { pathname } = useLocation();
  return (
    <>
      <PageHeader title="Page not found" />
      <p>
        There is no page at <code>{pathname}</code>. Go to the <Link to="/images">image studio</Link> or the{' '}
        <Link to="/gallery">gallery</Link>.
      </p>
    </>
  );
}
