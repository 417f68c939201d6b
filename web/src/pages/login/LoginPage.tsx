import { PageHeader } from '../../components/PageHeader';

export default function LoginPage() {
  return <PageHeader title="Sign in" />;
}
