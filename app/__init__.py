"""Beacon: crisis-chat triage service."""
