"""The payment reference service: contract (messages), domain (pure handler), service (wiring)."""
