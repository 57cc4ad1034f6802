"""The bank reference service: contract (messages), domain (pure handler), service (wiring)."""
