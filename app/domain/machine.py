"""A checked state machine: a table of allowed moves and the named sets the code asks about.

In the spirit of starlette's checked ``WebSocketState`` and dispatch's case status flows: the
table is data, every writer asks it before writing, and an illegal move is a programming error
(it raises) rather than something a caller may quietly get away with.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

S = TypeVar("S", bound=StrEnum)


class IllegalTransition(Exception):
    """A move the table does not allow: a bug in the caller, never a user's mistake."""


@dataclass(frozen=True)
class StateMachine(Generic[S]):
    name: str
    initial: S
    moves: Mapping[S, frozenset[S]]

    def __post_init__(self) -> None:
        states = set(self.moves)
        for source, targets in self.moves.items():
            if not targets <= states:
                unknown = sorted(str(t) for t in targets - states)
                raise ValueError(f"{self.name}: {source} moves to unknown states {unknown}")
            if source in targets:
                raise ValueError(f"{self.name}: {source} may not move to itself")

    @property
    def states(self) -> frozenset[S]:
        return frozenset(self.moves)

    @property
    def terminal(self) -> frozenset[S]:
        """States nothing leaves."""
        return frozenset(s for s, targets in self.moves.items() if not targets)

    def allows(self, source: str, target: str) -> bool:
        return any(s == source and target in t for s, t in self.moves.items())

    def sources(self, target: S) -> frozenset[S]:
        """Every state from which ``target`` may be reached in one move."""
        return frozenset(s for s, targets in self.moves.items() if target in targets)

    def check(self, sources: Iterable[str], target: S) -> frozenset[S]:
        """The given sources, as states, after checking each may move to ``target``."""
        checked: set[S] = set()
        for source in sources:
            if not self.allows(source, target):
                raise IllegalTransition(f"{self.name}: {source} -> {target} is not allowed")
            checked.add(self._state(source))
        return frozenset(checked)

    def _state(self, value: str) -> S:
        for state in self.moves:
            if state == value:
                return state
        raise IllegalTransition(f"{self.name}: unknown state {value!r}")


def values(states: Collection[StrEnum]) -> tuple[str, ...]:
    """Plain strings for SQL ``IN (...)``, in a stable order."""
    return tuple(sorted(s.value for s in states))
