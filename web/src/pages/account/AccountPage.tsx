import { PageHeader } from '../../components/PageHeader';

export default function AccountPage() {
  return <PageHeader title="Account" />;
}
