"""Profile the `beacon serve` process a bench starts, with py-spy, while the bench runs.

py-spy samples the running server from outside (ptrace), so the server runs exactly as it does
in the bench: no flag, no instrumentation. This runs ``python -m <bench> <args>``, waits for its
`beacon serve` child (the first one; chat_e2e's echo servers are not Beacon), records it until
it exits, and prints the top frames by own time ("self") and by time under them ("total"), as
shares of the samples where the process was busy. docs/performance.md keeps those tables.

    .venv/bin/python -m bench.profile [--rate 200] [--top 25] [--raw FILE] -- \
        bench.chat_e2e --clients 50 --seconds 5 --rate 500

Needs ptrace rights over the child (root, or ``kernel.yama.ptrace_scope`` 0).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench._common import ROOT


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with open(task / "children") as handle:
            found.extend(int(p) for p in handle.read().split())
    return found


def _serve_pid(root: int, timeout_s: float) -> int | None:
    """The first descendant of ``root`` whose command line runs `beacon serve`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stack = [root]
        while stack:
            pid = stack.pop()
            try:
                kids = _children(pid)
            except OSError:
                continue
            for kid in kids:
                try:
                    argv = Path(f"/proc/{kid}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if b"serve" in argv and (b"app.cli" in argv or argv[0].endswith(b"beacon")):
                    return kid
                stack.append(kid)
        time.sleep(0.05)
    return None


def _label(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (file.py)``: lines split one function apart."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[parts.index("app") :]) if "app" in parts else Path(path).name
    return f"{name} ({short})"


# Stacks of the server's start-up (imports, loading and warming the triage model), left out of
# the shares: on a loaded machine start-up can outlast --after-s, and it is not the hot path.
STARTUP_FRAMES = ("_find_and_load", "load_engine (")


def summarise(raw: str, top: int) -> str:
    """Self and total shares per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    under: Counter[str] = Counter()
    samples = startup = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        if any(frame in stack for frame in STARTUP_FRAMES):
            startup += count
            continue
        frames = [_label(f) for f in stack.split(";")[1:]]  # [0] is the thread
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for label in set(frames):
            under[label] += count
    lines = [f"samples (GIL held): {samples} (start-up left out: {startup})", ""]
    lines += ["| self % | function |", "|---:|---|"]
    lines += [f"| {100 * n / samples:.1f} | `{f}` |" for f, n in own.most_common(top)]
    # Totals for Beacon's own functions only: the entry points above them (uvicorn, asyncio,
    # the CLI) are ~100 % and say nothing.
    ours = Counter({f: n for f, n in under.items() if "(app/" in f and "app/cli.py" not in f})
    lines += ["", "| total % | Beacon function |", "|---:|---|"]
    lines += [f"| {100 * n / samples:.1f} | `{f}` |" for f, n in ours.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--raw", help="keep py-spy's collapsed stacks here")
    parser.add_argument(
        "--after-s",
        type=float,
        default=8.0,
        help="start sampling this long after the server "
        "appears (leaves out its start-up: imports, loading the triage model)",
    )
    parser.add_argument("bench", nargs=argparse.REMAINDER, help="-- bench.module [args...]")
    args = parser.parse_args()
    command = [a for a in args.bench if a != "--"]
    if not command:
        parser.error("name the bench to run, e.g. -- bench.imminent_offer --n 100")
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    raw_path = args.raw or os.path.join(tempfile.mkdtemp(prefix="beacon-profile-"), "raw.txt")
    bench = subprocess.Popen([sys.executable, "-m", *command], cwd=ROOT)
    pid = _serve_pid(bench.pid, timeout_s=120)
    if pid is None:
        bench.wait()
        print("no `beacon serve` child appeared", file=sys.stderr)
        return 1
    time.sleep(args.after_s)
    # --gil: only the thread holding the GIL is sampled, so the shares are of the CPU the
    # server's Python spends (waiting in epoll or on the database is not counted).
    recorder = subprocess.Popen(
        [
            *(py_spy, "record", "--pid", str(pid), "--rate", str(args.rate)),
            *("--nonblocking", "--gil", "--format", "raw", "--output", raw_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    code = bench.wait()
    recorder.wait(60)  # stops by itself when the server exits
    print(summarise(Path(raw_path).read_text(), args.top))
    return code


if __name__ == "__main__":
    sys.exit(main())
