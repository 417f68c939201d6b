import { PageHeader } from '../../components/PageHeader';

export default function AboutPage() {
  return <PageHeader title="About" />;
}
