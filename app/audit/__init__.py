"""Append-only audit log: who did what to which subject, when. Metadata only, never text."""
