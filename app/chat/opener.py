"""Group commit for hellos (SPEC §3, §10): every session opened or resumed while the previous
commit was in flight shares the next one.

A hello is one row (an INSERT with its audit record, or the resume UPDATE), and on its own it
costs a pooled connection, a round trip per statement and a commit, so a reconnect storm (all
visitors of a dead instance at once) or a flood of drive-by hellos was paced by commits. Here
each lane is one task: it takes whatever is waiting (up to ``max_batch``) and writes it in ONE
transaction — one INSERT for all the new sessions, one for their audit records, or one UPDATE
for all the resumes — then answers each socket. At low load a hello commits alone, at once.

Three lanes — opens, resumes and leaves (a socket closing: the visitor's flag and the start of
the grace period) — so that a flood of new hellos never delays a visitor coming back to their
chat, and each lane holds at most one pooled connection (the messages of people already talking
keep the rest). Before the commit, each socket is told its session id (``on_found``) so that it
can subscribe to the session's channel while the row is still locked: whatever is stored after
the open read the row is heard, and nothing needs reading again (app/chat/connection.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

import structlog
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.bus import Bus
from app.chat.errors import InvalidResumeToken, StoreUnavailable
from app.chat.repository import visitors_disconnected
from app.chat.service import NewSession, SessionView, open_sessions, resume_sessions
from app.core.db import transaction

log = structlog.get_logger(__name__)

OnFound = Callable[[uuid.UUID], None]
Opened = tuple[SessionView, str]  # the new session and its resume token
MAX_BATCH: Final = 200
_ATTEMPTS: Final = 3
_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(slots=True)
class _Waiting(Generic[_T, _R]):
    request: _T
    on_found: OnFound
    future: asyncio.Future[_R] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def found(self, session_id: uuid.UUID) -> None:
        if not self.future.done():  # a socket that went away subscribes to nothing
            self.on_found(session_id)

    def answer(self, result: _R | BaseException) -> None:
        if self.future.done():
            return
        if isinstance(result, BaseException):
            self.future.set_exception(result)
        else:
            self.future.set_result(result)


def _nothing_to_hear(_: uuid.UUID) -> None:
    """A closing socket subscribes to nothing."""


class _Lane(Generic[_T, _R]):
    """Requests of one kind, committed a batch at a time by one task."""

    def __init__(
        self,
        name: str,
        commit: Callable[[list[_Waiting[_T, _R]]], Awaitable[None]],
        *,
        max_batch: int,
    ) -> None:
        self.name = name
        self._commit = commit
        self._max_batch = max_batch
        self._waiting: deque[_Waiting[_T, _R]] = deque()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def submit(self, request: _T, on_found: OnFound) -> _R:
        if self._task is None:
            raise StoreUnavailable("not accepting sessions (shutting down)")
        waiting: _Waiting[_T, _R] = _Waiting(request, on_found)
        self._waiting.append(waiting)
        self._ready.set()
        return await waiting.future

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    @property
    def running(self) -> bool:
        return self._task is not None

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while self._waiting:
            self._waiting.popleft().answer(StoreUnavailable("shutting down"))

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._waiting:
                count = min(len(self._waiting), self._max_batch)
                batch = [self._waiting.popleft() for _ in range(count)]
                live = [w for w in batch if not w.future.done()]
                if not live:
                    continue
                try:
                    await self._attempts(live)
                except Exception as exc:  # never a dead lane: these sockets are told to retry
                    log.error("session_batch_failed", lane=self.name, error_type=type(exc).__name__)
                    for waiting in live:
                        waiting.answer(StoreUnavailable("please reconnect shortly"))

    async def _attempts(self, batch: list[_Waiting[_T, _R]]) -> None:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                await self._commit(batch)
                return
            except IntegrityError:
                if len(batch) == 1:
                    raise
                # Isolate whatever the database refuses, so the rest still commits.
                for waiting in batch:
                    await self._attempts([waiting])
                return
            except (DBAPIError, OSError) as exc:
                # A deadlock, a dropped connection: rolled back, nothing written; try again.
                log.warning(
                    "session_batch_retry", lane=self.name, attempt=attempt, batch=len(batch)
                )
                if attempt == _ATTEMPTS:
                    raise StoreUnavailable("sessions could not be written") from exc
                await asyncio.sleep(0.005 * 2**attempt)


class SessionOpener:
    """``open`` and ``resume`` for visitor sockets, group-committed (see the module doc)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bus: Bus,
        *,
        token_ttl_s: float,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._bus = bus
        self._token_ttl_s = token_ttl_s
        self._opens: _Lane[NewSession, Opened] = _Lane(
            "session-opens", self._commit_opens, max_batch=max_batch
        )
        self._resumes: _Lane[str, SessionView] = _Lane(
            "session-resumes", self._commit_resumes, max_batch=max_batch
        )
        # Sockets closing: a flood of drive-bys leaving is as many commits as their hellos were.
        self._leaves: _Lane[uuid.UUID, None] = _Lane(
            "session-leaves", self._commit_leaves, max_batch=max_batch
        )
        self.commits = 0  # observable by tests and benches

    async def start(self) -> None:
        self._opens.start()
        self._resumes.start()
        self._leaves.start()

    async def stop(self) -> None:
        await self._opens.stop()
        await self._resumes.stop()
        await self._leaves.stop()

    async def open(self, request: NewSession, on_found: OnFound) -> Opened:
        """A new session and its resume token (shown once). Raises StoreUnavailable."""
        return await self._opens.submit(request, on_found)

    async def resume(self, token: str, on_found: OnFound) -> SessionView:
        """The token's session, marked connected. Raises InvalidResumeToken, StoreUnavailable."""
        return await self._resumes.submit(token, on_found)

    async def leave(self, session_id: uuid.UUID) -> None:
        """Record that the visitor's last socket here closed (the grace period starts). Shares a
        commit with the others closing meanwhile; once the lanes are stopped (shutting down),
        written alone. Raises StoreUnavailable, DBAPIError."""
        if not self._leaves.running:
            async with transaction(self._sessionmaker) as db:
                await visitors_disconnected(db, [session_id])
            return
        await self._leaves.submit(session_id, _nothing_to_hear)

    async def _commit_leaves(self, batch: list[_Waiting[uuid.UUID, None]]) -> None:
        async with transaction(self._sessionmaker) as db:
            await visitors_disconnected(db, [w.request for w in batch])
        self.commits += 1
        for waiting in batch:
            waiting.answer(None)

    async def _commit_opens(
        self, batch: list[_Waiting[NewSession, tuple[SessionView, str]]]
    ) -> None:
        async with transaction(self._sessionmaker) as db:
            opened = await open_sessions(
                db, [w.request for w in batch], token_ttl_s=self._token_ttl_s
            )
            for waiting, (session, _) in zip(batch, opened, strict=True):
                waiting.found(session.id)
        self.commits += 1
        for waiting, result in zip(batch, opened, strict=True):
            waiting.answer(result)

    async def _commit_resumes(self, batch: list[_Waiting[str, SessionView]]) -> None:
        async with transaction(self._sessionmaker) as db:
            found = await resume_sessions(
                db, self._bus, tokens={w.request for w in batch}, token_ttl_s=self._token_ttl_s
            )
            for waiting in batch:
                session = found.get(waiting.request)
                if session is not None:
                    waiting.found(session.id)
        self.commits += 1
        for waiting in batch:
            session = found.get(waiting.request)
            waiting.answer(
                InvalidResumeToken("unknown or expired resume token")
                if session is None
                else session
            )
