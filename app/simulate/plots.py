"""PNG figures of a comparison (matplotlib, the optional ``sim`` extra; imported only here).

* ``waits.png``: per urgency level, the share of answered visitors answered within a given
  wait, one line per policy (an empirical CDF on a log time axis).
* ``over_shift.png``: the p95 wait of visitors arriving in each half hour, per policy, for the
  most and the least urgent levels, over the arrival rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.simulate.engine import Outcome, RunResult
from app.simulate.report import percentile
from app.simulate.scenario import LEVEL_NAMES

_COLOURS = {"fifo": "#9e9e9e", "static": "#e69f00", "beacon": "#0072b2"}
_BIN_S = 1800.0


class PlotsUnavailable(RuntimeError):
    """matplotlib is not installed (pip install 'beacon[sim]')."""


def _pyplot() -> Any:
    try:
        import matplotlib as mpl
    except ImportError:
        raise PlotsUnavailable(
            "PNG plots need matplotlib: pip install 'beacon[sim]' (or use --json)"
        ) from None
    mpl.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    # No software/version metadata: the same run draws the same bytes on every machine alike.
    fig.savefig(path, dpi=110, metadata={"Software": None})


def wait_distributions(
    results: Sequence[RunResult], labels: dict[str, str], path: Path, title: str
) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(LEVEL_NAMES), figsize=(16, 3.8), sharey=True)
    for level, ax in zip(reversed(range(len(LEVEL_NAMES))), axes, strict=True):
        for result in results:
            waits = sorted(
                max(v.wait_s, 0.5)
                for v in result.visits
                if v.arrival.urgency == level and v.outcome is Outcome.answered
            )
            if not waits:
                continue
            shares = [(i + 1) / len(waits) for i in range(len(waits))]
            ax.step(
                waits,
                shares,
                where="post",
                color=_COLOURS.get(result.policy),
                label=labels.get(result.policy, result.policy),
            )
        ax.set_xscale("log")
        ax.set_xlim(1, 7200)
        ax.set_xticks([1, 10, 30, 300, 3600])
        ax.set_xticklabels(["1 s", "10 s", "30 s", "5 m", "1 h"])
        ax.axvline(30, color="#d55e00", linewidth=0.8, linestyle=":")
        ax.set_title(LEVEL_NAMES[level])
        ax.set_xlabel("wait for a volunteer")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("share answered within")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def waits_over_shift(
    results: Sequence[RunResult],
    labels: dict[str, str],
    path: Path,
    title: str,
    shift_hours: float,
    levels: Sequence[int] = (4, 1),
) -> Path:
    plt = _pyplot()
    bins = max(1, round(shift_hours * 3600.0 / _BIN_S))
    centres = [(b + 0.5) * _BIN_S / 3600.0 for b in range(bins)]
    fig, axes = plt.subplots(len(levels), 1, figsize=(10, 3.2 * len(levels)), sharex=True)
    for level, ax in zip(levels, axes, strict=True):
        for result in results:
            by_bin: list[list[float]] = [[] for _ in range(bins)]
            for v in result.visits:
                if v.arrival.urgency == level and v.outcome is Outcome.answered:
                    by_bin[min(bins - 1, int(v.arrival.at_s // _BIN_S))].append(v.wait_s)
            p95 = [percentile(b, 95) for b in by_bin]
            ax.plot(
                [c for c, p in zip(centres, p95, strict=True) if p is not None],
                [p / 60.0 for p in p95 if p is not None],
                marker="o",
                markersize=3,
                color=_COLOURS.get(result.policy),
                label=labels.get(result.policy, result.policy),
            )
        arrivals = [0] * bins
        for v in results[0].visits:
            arrivals[min(bins - 1, int(v.arrival.at_s // _BIN_S))] += 1
        rate = ax.twinx()
        rate.bar(centres, [a * 3600.0 / _BIN_S for a in arrivals], width=0.45, color="#000000")
        rate.set_ylabel("arrivals per hour", color="#777777")
        rate.patch.set_visible(False)
        for bar in rate.patches:
            bar.set_alpha(0.08)
        ax.set_zorder(rate.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.set_ylabel("p95 wait (min)")
        ax.set_title(f"{LEVEL_NAMES[level]}: p95 wait of visitors arriving in each half hour")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    axes[-1].set_xlabel("hour of the shift")
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def draw(
    results: Sequence[RunResult],
    labels: dict[str, str],
    folder: Path,
    *,
    name: str,
    shift_hours: float,
) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [
        wait_distributions(results, labels, folder / f"{name}-waits.png", f"{name}: wait by level"),
        waits_over_shift(
            results,
            labels,
            folder / f"{name}-over-shift.png",
            f"{name}: waits over the shift",
            shift_hours,
        ),
    ]
