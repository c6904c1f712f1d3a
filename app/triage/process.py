"""Triage in a process of its own, beside the server's event loop.

The engine is mostly numpy, which releases the GIL in its matrix products, but its tokenizer,
rule tables and result building are Python: in the server's process they hold the GIL that the
event loop needs, so on a 2-core machine a chat with a new text in every message saturates on
one core (docs/performance.md). In a process of its own, triage runs on the other core.

The worker loads its own engine (its caches are its own: each text is still encoded once and
reused as context) and answers one batch at a time over a pipe: the calling thread writes the
batch and reads the results itself, with no executor threads between them, because every
message's ack waits for this round trip (a process pool's manager and feeder threads cost 1-4
ms more per batch, measured). If the worker dies, the next call starts a new one and retries
once; a second failure reaches the caller, whose fail-safe applies (the committer rates the
batch moderate with ``triage:error`` and loses nothing).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import structlog

from app.triage.types import TriageResult

log = structlog.get_logger(__name__)

PARENT_CHECK_S = 0.5
START_TIMEOUT_S = 120.0
Batch = list[tuple[str, Sequence[str]]]


class TriageWorkerError(RuntimeError):
    """The engine raised on a batch in the worker (the worker itself carries on)."""


def other_cores() -> bool:
    """Whether this process may run on more than one core (else a worker only costs memory)."""
    try:
        return len(os.sched_getaffinity(0)) > 1
    except AttributeError:  # pragma: no cover - not on Linux
        return (os.cpu_count() or 1) > 1


def _serve(conn: Connection, parent: int) -> None:
    """The worker: load the engine, say which model it is, then rate batches until told to stop
    (``None``) or until the parent is gone."""
    # A server killed outright (SIGKILL, OOM) cannot stop its worker, which would wait for work
    # forever holding a second engine's memory: it leaves by itself once its parent is gone.
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    from app.triage import load_engine

    engine = load_engine()
    conn.send(engine.model_version)
    while True:
        try:
            batch: Batch | None = conn.recv()
        except EOFError:
            return
        if batch is None:
            return
        try:
            conn.send((True, engine.assess_many(batch)))
        except Exception as error:  # a bad batch fails that batch, not the worker
            conn.send((False, f"{type(error).__name__}: {error}"))


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)


class _Worker:
    def __init__(self) -> None:
        # spawn, not fork: the server's process has threads and an event loop by now.
        context = multiprocessing.get_context("spawn")
        self.conn, theirs = context.Pipe()
        self.process: BaseProcess = context.Process(
            target=_serve, args=(theirs, os.getpid()), name="beacon-triage", daemon=True
        )
        self.process.start()
        theirs.close()
        if not self.conn.poll(START_TIMEOUT_S):
            self.stop()
            raise RuntimeError("triage worker did not start")
        self.model_version: str = self.conn.recv()

    def assess_many(self, batch: Batch) -> list[TriageResult]:
        self.conn.send(batch)
        done, answer = self.conn.recv()
        if not done:
            raise TriageWorkerError(answer)
        results: list[TriageResult] = answer
        return results

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # already gone
            self.conn.send(None)
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class TriageProcess:
    """``assess_many`` in a worker process; call from a thread (it blocks until the result).
    One batch at a time: the committer triages one batch at a time anyway."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        # Between start and close; a worker that died and could not be replaced is started
        # again on the next call, so one failed restart does not fail every later batch.
        self._open = False
        self.model_version = ""

    def start(self) -> None:
        """Start the worker and wait until its engine is loaded (seconds, before serving)."""
        with self._lock:
            self._open = True
            self.model_version = self._running().model_version

    def worker_pid(self) -> int:
        """The worker process's id (for operators and tests: it changes when one is replaced)."""
        with self._lock:
            pid = self._running().process.pid
            assert pid is not None
            return pid

    def close(self) -> None:
        with self._lock:
            worker, self._worker, self._open = self._worker, None, False
        if worker is not None:
            worker.stop()

    def assess_many(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[TriageResult]:
        batch = list(items)
        with self._lock:
            worker = self._running()
            try:
                return worker.assess_many(batch)
            except (EOFError, OSError):
                log.warning("triage_worker_restarted")
                self._worker = None
                worker.stop()
                return self._running().assess_many(batch)

    def _running(self) -> _Worker:
        if not self._open:
            raise RuntimeError("triage worker not started")
        if self._worker is None:
            self._worker = _Worker()
        return self._worker
