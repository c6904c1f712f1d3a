"""Triage in a process of its own, beside the server's event loop.

The engine is mostly numpy, which releases the GIL in its matrix products, but its tokenizer,
rule tables and result building are Python: in the server's process they hold the GIL that the
event loop needs, so on a 2-core machine a chat with a new text in every message saturates on
one core (docs/performance.md). In a process of its own, triage runs on the other core.

The worker process loads its own engine (its caches are its own: each text is still encoded once
and reused as context). If it dies, the next call starts a new one and retries once; a second
failure reaches the caller, whose fail-safe applies (the committer rates the batch moderate with
``triage:error`` and loses nothing).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import structlog

from app.triage.engine import Engine
from app.triage.types import TriageResult

log = structlog.get_logger(__name__)

PARENT_CHECK_S = 0.5
# The worker process's engine: set by its initializer, in that process only. A pool's functions
# must be importable by name, so the state they use lives at module level of the child.
_worker_engine: Engine | None = None


def _load_worker_engine() -> None:
    global _worker_engine
    # A server killed outright (SIGKILL, OOM) cannot stop its worker, which would wait for work
    # forever holding a second engine's memory: it leaves by itself once its parent is gone.
    threading.Thread(
        target=_exit_with_parent, args=(os.getppid(),), name="parent-watch", daemon=True
    ).start()
    from app.triage import load_engine

    _worker_engine = load_engine()


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)


def _assess_in_worker(items: list[tuple[str, tuple[str, ...]]]) -> list[TriageResult]:
    if _worker_engine is None:  # pragma: no cover - the initializer always ran first
        raise RuntimeError("triage worker has no engine")
    return _worker_engine.assess_many(items)


def _worker_model_version() -> str:
    if _worker_engine is None:  # pragma: no cover
        raise RuntimeError("triage worker has no engine")
    return _worker_engine.model_version


def other_cores() -> bool:
    """Whether this process may run on more than one core (else a worker only costs memory)."""
    try:
        return len(os.sched_getaffinity(0)) > 1
    except AttributeError:  # pragma: no cover - not on Linux
        return (os.cpu_count() or 1) > 1


class TriageProcess:
    """``assess_many`` in a worker process; call from a thread (it blocks until the result)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self.model_version = ""

    def start(self) -> None:
        """Start the worker and wait until its engine is loaded (seconds, before serving)."""
        with self._lock:
            self._pool = self._new_pool()
            self.model_version = self._pool.submit(_worker_model_version).result()

    def worker_pid(self) -> int:
        """The worker process's id (for operators and tests: it changes when one is replaced)."""
        pid: int = self._current().submit(os.getpid).result()
        return pid

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def assess_many(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[TriageResult]:
        batch = [(text, tuple(context)) for text, context in items]
        pool = self._current()
        try:
            return pool.submit(_assess_in_worker, batch).result()
        except BrokenProcessPool:
            log.warning("triage_worker_restarted")
            return self._replace(pool).submit(_assess_in_worker, batch).result()

    def _current(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                raise RuntimeError("triage worker not started")
            return self._pool

    def _replace(self, broken: ProcessPoolExecutor) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is broken:
                broken.shutdown(wait=False)
                self._pool = self._new_pool()
            if self._pool is None:
                raise RuntimeError("triage worker closed")
            return self._pool

    @staticmethod
    def _new_pool() -> ProcessPoolExecutor:
        # spawn, not fork: the server's process has threads and an event loop by now.
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_load_worker_engine,
        )
