"""The handoff decisions of SPEC §5 as pure functions: no database, no clock of their own.

The escalation service (``app.escalation.service``) applies them to rows it has locked; the shift
simulator (``app.simulate``) applies them to simulated sessions. Keeping one copy is what makes
the simulator's handoff figures say something about the server.
"""

from __future__ import annotations

# Sessions software escalates on its own: nobody is talking with them yet. A warm transfer
# (``transferring``) counts only once nobody holds it any more: until the other volunteer
# accepts, the current one is still in the chat.
UNANSWERED = ("waiting", "offered", "transferring")


def is_unanswered(status: str, *, held: bool) -> bool:
    """Whether the handoff clock may act on a session: start, or at its deadline hand off.

    ``held``: a volunteer has an active assignment on it (only matters while transferring)."""
    return status in UNANSWERED and not (status == "transferring" and held)
