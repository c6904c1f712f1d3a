"""The pure domain core: who may move which state where, and how urgent people rank.

No ``await``, no SQLAlchemy, no I/O: plain tables and functions that the services consult and
the tests read directly (tests/domain). Everything else in ``app`` may import it; it imports
nothing from ``app`` but the triage level scale.
"""
