"""Escalation (SPEC §5): safety messages, supervisor alerts, the handoff clock and warm handoff
to hotline partners (signed webhooks, retries, circuit breaker, status callbacks)."""
