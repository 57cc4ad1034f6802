"""The inventory reference service: contract (messages), domain (pure handler), service (wiring)."""
