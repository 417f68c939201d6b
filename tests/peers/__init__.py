"""Real protocol peers for tests: an SMTP server, an SMS centre (SMPP) and a GSM modem (pty)."""
