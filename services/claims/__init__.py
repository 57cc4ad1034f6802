"""The insurer of the claim saga: contract (messages), domain (pure handler), service (wiring)."""
