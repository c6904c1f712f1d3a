"""Triage in a worker process gives the in-process engine's results, survives its worker being
killed, and never outlives the process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from app.triage import Level
from app.triage import process as process_module
from app.triage.process import TriageProcess, TriageWorkerError, other_cores
from tests.conftest import shared_triage

# (text, context): urgent, calm, Spanish, a retraction kept urgent by its context, an idiom.
CASES: list[tuple[str, tuple[str, ...]]] = [
    ("I took 30 pills an hour ago", ()),
    ("hi, is anyone there?", ()),
    ("ya me tomé todas las pastillas", ()),
    ("jk lol", ("the pills are in my hand", "i'm going to take them all now")),
    ("this exam is killing me 😂", ()),
    ("I can't do this anymore", ("my mum died last month",)),
]


@pytest.fixture(scope="module")
def worker() -> Iterator[TriageProcess]:
    process = TriageProcess()
    process.start()
    yield process
    process.close()


def test_the_worker_rates_as_the_engine_in_this_process_does(worker: TriageProcess) -> None:
    here = shared_triage().assess_many(CASES)
    there = worker.assess_many(CASES)
    assert there == here
    assert worker.model_version == shared_triage().model_version
    assert there[0].level == Level.imminent
    assert there[3].level >= Level.high  # the conversation keeps it urgent


def test_a_killed_worker_is_replaced_and_the_batch_still_rated(worker: TriageProcess) -> None:
    first = worker.worker_pid()
    # Whether the kill lands before, during or after the batch is written, the pipe's end closes
    # with the process and the call sees it.
    os.kill(first, signal.SIGKILL)
    assert worker.assess_many(CASES) == shared_triage().assess_many(CASES)
    assert worker.worker_pid() != first


def test_a_batch_the_engine_cannot_rate_fails_alone(worker: TriageProcess) -> None:
    # In the server's process such a batch raises and the committer fails safe; here too, and
    # the worker is not replaced for it (a restart costs seconds of engine load).
    before = worker.worker_pid()
    with pytest.raises(TriageWorkerError):
        worker.assess_many([(None, ())])  # type: ignore[list-item]
    assert worker.worker_pid() == before
    assert worker.assess_many(CASES[:2]) == shared_triage().assess_many(CASES[:2])


def test_a_closed_worker_refuses_work_instead_of_hanging() -> None:
    process = TriageProcess()
    with pytest.raises(RuntimeError, match="not started"):
        process.assess_many(CASES[:1])
    process.start()
    process.close()
    with pytest.raises(RuntimeError, match="not started"):
        process.assess_many(CASES[:1])


def test_a_failed_restart_is_tried_again_on_the_next_batch(
    worker: TriageProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker dies and its replacement cannot start (say the machine is out of memory for a
    # moment): that batch fails (the committer fails safe), and the next one starts a worker.
    real = process_module._Worker

    def refuses() -> process_module._Worker:
        raise RuntimeError("triage worker did not start")

    os.kill(worker.worker_pid(), signal.SIGKILL)
    monkeypatch.setattr(process_module, "_Worker", refuses)
    with pytest.raises(RuntimeError, match="did not start"):
        worker.assess_many(CASES[:1])
    monkeypatch.setattr(process_module, "_Worker", real)
    assert worker.assess_many(CASES) == shared_triage().assess_many(CASES)


def test_one_core_means_no_worker() -> None:
    # sched_setaffinity(0) pins the calling thread only, and is put back after.
    allowed = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(allowed)})
        assert other_cores() is False
    finally:
        os.sched_setaffinity(0, allowed)
    assert other_cores() is (len(allowed) > 1)


def test_the_worker_leaves_when_its_parent_is_killed_outright() -> None:
    # A server killed with SIGKILL runs no shutdown: its worker must not linger holding an engine.
    script = textwrap.dedent(
        """
        import sys, time
        from app.triage.process import TriageProcess
        process = TriageProcess()
        process.start()
        print(process.worker_pid(), flush=True)
        time.sleep(120)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # the killed parent's resource tracker reports its semaphores
        text=True,
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        os.kill(child, 0)  # alive
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(child, signal.SIGKILL)
            pytest.fail("the worker outlived its parent")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
