"""The visitor page's weight and time to interactive, in headless Chromium.

    .venv/bin/python -m bench.page_load [--runs 5]

Starts ``beacon serve`` on a throwaway SQLite file, then ``tests/browser/measure.mjs`` loads
``/chat`` on a phone viewport with an empty cache, unthrottled and on an emulated poor mobile
connection (400 ms round trip, 400 kbit/s down). "Interactive" is the page's own
``beacon-ready`` mark: the chat is open and a person can type. The same-run baseline is
loading ``/healthz`` (a tiny JSON answer from the same server) under the same conditions.
Needs ``bash scripts/browser-setup.sh``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"beacon serve exited with {proc.returncode}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{url}/healthz", timeout=1) as response,  # noqa: S310
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    raise TimeoutError("beacon serve did not become healthy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "BEACON_ENV": "test",
            "BEACON_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db",
            "BEACON_LOG_LEVEL": "WARNING",
        }
        serve = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
        server = subprocess.Popen(serve, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        try:
            _wait_healthy(url, server)
            measured = subprocess.run(
                ["node", "measure.mjs"],
                cwd=ROOT / "tests" / "browser",
                env={**env, "BEACON_BASE_URL": url, "RUNS": str(args.runs)},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
        finally:
            server.terminate()
            server.wait(30)
    lines = [line for line in measured.stdout.splitlines() if line.startswith("{")]
    if measured.returncode != 0 or not lines:
        raise SystemExit(f"measure.mjs failed: {measured.stdout[-2000:]}{measured.stderr[-2000:]}")
    figures = json.loads(lines[-1])
    for name, label in (("fast", "loopback, no throttling"), ("slow", "400 ms RTT, 400 kbit/s")):
        f = figures[name]
        ratio = f["chat_interactive_ms"] / max(f["baseline_load_ms"], 0.1)
        print(
            f"/chat ({label}, median of {args.runs}):"
            f" interactive {f['chat_interactive_ms']:.0f} ms,"
            f" load {f['chat_load_ms']:.0f} ms; baseline /healthz load"
            f" {f['baseline_load_ms']:.0f} ms; ratio interactive/baseline {ratio:.1f}"
        )
    fast = figures["fast"]
    print(
        f"/chat weight: {fast['transfer_bytes']} bytes transferred (headers included),"
        f" {fast['body_bytes']} bytes of content, {fast['requests']} requests"
    )
    summary = {
        "transfer_bytes": fast["transfer_bytes"],
        "interactive_ms": round(fast["chat_interactive_ms"]),
        "interactive_slow_ms": round(figures["slow"]["chat_interactive_ms"]),
    }
    print("SUMMARY " + json.dumps(summary))


if __name__ == "__main__":
    main()
