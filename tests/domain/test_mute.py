"""The mute rules without a database: who is shielded from what, and that no high+ rise is
ever hidden."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.mute import ActiveMute, needs_second_supervisor, withheld

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
MUTE = ActiveMute(until=NOW + timedelta(minutes=10), confirmed=False)
CONFIRMED = ActiveMute(until=NOW + timedelta(minutes=10), confirmed=True)


def rule(mute: ActiveMute | None = MUTE, **kw: object) -> bool:
    args: dict[str, object] = {
        "now": NOW,
        "viewer_is_supervisor": False,
        "sender": "visitor",
        "level": 1,
        "session_urgency": 1,
    }
    args.update(kw)
    return withheld(mute, **args)  # type: ignore[arg-type]


def test_a_calm_visitor_message_is_withheld_from_the_volunteer_while_muted() -> None:
    assert rule() is True
    assert rule(None) is False
    assert rule(now=MUTE.until) is False  # it ends by itself
    assert rule(viewer_is_supervisor=True) is False
    assert rule(sender="volunteer") is False
    assert rule(sender="system") is False  # safety messages are never withheld


@pytest.mark.parametrize("level", [3, 4])
def test_high_and_imminent_messages_are_always_shown(level: int) -> None:
    assert rule(level=level) is False
    assert rule(CONFIRMED, level=level, session_urgency=4) is False


def test_untriaged_text_is_shown() -> None:
    assert rule(level=None) is False


def test_a_high_session_is_shielded_only_by_a_confirmed_mute() -> None:
    assert needs_second_supervisor(3) is True
    assert needs_second_supervisor(2) is False
    assert rule(session_urgency=3, level=1) is False
    assert rule(CONFIRMED, session_urgency=3, level=1) is True
