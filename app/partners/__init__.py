"""Partner apps: API keys (hashed, scoped, revocable), rate limits, the triage request log."""
