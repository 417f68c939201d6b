"""Chat: the OpenRouter model catalogue, client and router, conversations, the coding agent,
deep research and the code sandbox."""
