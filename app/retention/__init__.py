"""Retention (SPEC §9): transcript text and free-text notes are purged after
``BEACON_RETENTION_DAYS``; metadata (levels, signals, timestamps, the audit trail) stays."""
