import { Link } from 'react-router';
import { PageHeader } from '../../components/PageHeader';

/** The chat slot: the chat issue replaces this page. */
export default function ChatPage() {
  return (
    <>
      <PageHeader title="Chat" />
      <section className="card" aria-labelledby="chat-soon">
        <h2 id="chat-soon">Coming soon</h2>
        <p>
          Chat with hosted language models through OpenRouter is on its way. Until then, create images in the{' '}
          <Link to="/images">image studio</Link>.
        </p>
      </section>
    </>
  );
}
