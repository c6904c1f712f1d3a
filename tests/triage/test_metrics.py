"""Quality figures on small examples worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from app.triage.corpus import Example, severity_levels
from app.triage.metrics import (
    METRICS,
    Estimate,
    bootstrap,
    calm_high_rate,
    exact,
    imminent_recall,
    macro_f1,
    quadratic_kappa,
    report,
    urgent_precision,
    urgent_recall,
)

# (lowest true level, highest true level, predicted). (3, 4) is C-SSRS severity 5-6.
ROWS = [
    (4, 4, 4),  # imminent, caught exactly
    (4, 4, 3),  # imminent, caught as urgent but not as imminent
    (3, 3, 2),  # urgent, under-triaged
    (3, 3, 3),  # urgent, caught
    (0, 1, 3),  # calm (C-SSRS 0), false alarm
    (0, 0, 0),
    (1, 1, 1),
    (2, 2, 2),
    (3, 4, 3),  # severity 5-6 rated high: urgent caught, exact
    (3, 4, 4),  # severity 5-6 rated imminent: urgent caught, exact, not an imminent row
    (0, 0, 4),  # calm, false alarm
]


def _arrays(
    rows: list[tuple[int, int, int]],
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    low, high, pred = (np.array([row[i] for row in rows], dtype=np.int64) for i in range(3))
    return low, high, pred


def _examples(rows: list[tuple[int, int, int]], lang: str = "en") -> list[Example]:
    return [
        Example(text=f"row {n}", context=(), levels=frozenset(range(lo, hi + 1)), lang=lang)
        for n, (lo, hi, _) in enumerate(rows)
    ]


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        (urgent_recall, 5 / 6),  # urgent rows 1,2,3,4,9,10; caught all but row 3
        (urgent_precision, 5 / 7),  # called high+: 7 rows, 2 of them calm
        (imminent_recall, 1 / 2),  # imminent rows 1, 2; only row 1 predicted imminent
        (calm_high_rate, 2 / 4),  # calm rows 5, 6, 7, 11; rows 5 and 11 rated high+
        (exact, 7 / 11),  # rows 2, 3, 5, 11 outside their label
    ],
    ids=lambda value: getattr(value, "__name__", ""),
)
def test_metric_by_hand(metric: object, expected: float) -> None:
    assert callable(metric)
    assert metric(*_arrays(ROWS)) == pytest.approx(expected)


def test_cssrs_severity_5_and_6_count_as_high_or_imminent() -> None:
    assert severity_levels(0) == {0, 1}
    assert severity_levels(1) == severity_levels(2) == {2}
    assert severity_levels(3) == severity_levels(4) == {3}
    assert severity_levels(5) == severity_levels(6) == {3, 4}
    post = Example(text="post", context=(), levels=severity_levels(6))
    assert post.level == 3
    assert post.at_least(3) is True
    assert post.at_least(4) is None  # the label allows high or imminent
    # Rated high or imminent, a severity-6 post is exact and urgent, but not an imminent row.
    for predicted in (3, 4):
        low, high, pred = _arrays([(3, 4, predicted)])
        assert exact(low, high, pred) == 1.0
        assert urgent_recall(low, high, pred) == 1.0
        assert math.isnan(imminent_recall(low, high, pred))
    low, high, pred = _arrays([(3, 4, 2)])
    assert exact(low, high, pred) == 0.0
    assert urgent_recall(low, high, pred) == 0.0


def test_report_counts_and_confusion_matrix() -> None:
    examples = _examples(ROWS)
    predicted = [row[2] for row in ROWS]
    result = report(examples, predicted)
    assert result["rows"] == 11
    # rows: true level (the label's lowest) none..imminent; columns: predicted
    assert result["confusion"]["rows_truth_cols_predicted"] == [
        [1, 0, 0, 1, 1],  # rows 6, 5, 11
        [0, 1, 0, 0, 0],  # row 7
        [0, 0, 1, 0, 0],  # row 8
        [0, 0, 1, 2, 1],  # rows 3, 4 and 9, 10
        [0, 0, 0, 1, 1],  # rows 1, 2
    ]
    overall = result["overall"]
    assert overall["under_triaged_urgent"] == 1
    assert overall["calm_rated_high"] == 2
    assert overall["urgent_recall"]["value"] == round(5 / 6, 4)
    assert overall["urgent_recall"]["n"] == 11
    assert overall["imminent_recall"]["value"] == 0.5
    assert set(overall) >= set(METRICS) | {"quadratic_kappa", "macro_f1"}


def test_report_by_language_and_category() -> None:
    examples = [
        Example("a", (), frozenset({4}), category="farewell", lang="en"),
        Example("b", (), frozenset({4}), category="farewell", lang="es"),
        Example("c", (), frozenset({0}), category="calm", lang="es"),
        Example("d", (), frozenset({2}), category="passive_ideation", lang="en"),
    ]
    result = report(examples, [4, 2, 3, 2])
    assert result["by_language"]["en"]["urgent_recall"]["value"] == 1.0
    assert result["by_language"]["es"]["urgent_recall"]["value"] == 0.0
    assert result["by_language"]["es"]["calm_high_rate"]["value"] == 1.0
    categories = result["by_category"]
    assert categories["farewell"]["rows"] == 2
    assert categories["farewell"]["hit"] == 0.5  # one farewell called high+, one not
    assert categories["calm"]["hit"] == 0.0  # a calm row called high+
    assert categories["passive_ideation"]["hit"] == 1.0  # moderate called moderate+
    low, high = categories["farewell"]["hit_ci95"]
    assert 0.0 <= low <= 0.5 <= high <= 1.0


def test_report_compares_llm_columns_where_present() -> None:
    examples = _examples(ROWS[:4])
    result = report(examples, [4, 3, 2, 3], {"gpt_label": [4, None, 3, 3], "none": [None] * 4})
    assert result["compare"]["gpt_label"]["rows"] == 3
    assert result["compare"]["gpt_label"]["urgent_recall"]["value"] == 1.0
    assert "none" not in result["compare"]


# ------------------------------------------------------------------------ bootstrap
def test_bootstrap_interval_contains_the_value_and_is_reproducible() -> None:
    arrays = _arrays(ROWS * 5)
    for metric in METRICS.values():
        first = bootstrap(metric, *arrays)
        again = bootstrap(metric, *arrays)
        assert first == again
        assert first.low <= first.value <= first.high
        assert first.n == 55
    recall = bootstrap(urgent_recall, *arrays)
    assert recall.low < recall.value < recall.high  # 55 rows of mixed outcomes: a real interval
    other_seed = bootstrap(urgent_recall, *arrays, seed=7)
    assert other_seed.value == recall.value
    assert other_seed.low <= other_seed.value <= other_seed.high


def test_bootstrap_of_a_perfect_score_is_a_point() -> None:
    estimate = bootstrap(urgent_recall, *_arrays([(3, 3, 3), (4, 4, 4), (0, 0, 0)]))
    assert (estimate.value, estimate.low, estimate.high) == (1.0, 1.0, 1.0)


# ------------------------------------------------------------------------ empty groups
def test_metrics_on_empty_groups_are_nan_not_errors() -> None:
    calm_only = _arrays([(0, 0, 0), (1, 1, 1)])
    assert math.isnan(urgent_recall(*calm_only))
    assert math.isnan(imminent_recall(*calm_only))
    assert math.isnan(urgent_precision(*calm_only))  # nothing called urgent
    urgent_only = _arrays([(3, 3, 3)])
    assert math.isnan(calm_high_rate(*urgent_only))
    nothing = _arrays([])
    for metric in METRICS.values():
        assert math.isnan(metric(*nothing))


def test_bootstrap_of_an_empty_group_is_nan() -> None:
    estimate = bootstrap(urgent_recall, *_arrays([]))
    assert estimate.n == 0
    assert all(math.isnan(value) for value in (estimate.value, estimate.low, estimate.high))
    calm = bootstrap(urgent_recall, *_arrays([(0, 0, 0), (1, 1, 2)]))
    assert all(math.isnan(value) for value in (calm.value, calm.low, calm.high))
    assert calm.n == 2
    assert math.isnan(Estimate(float("nan"), 0.0, 1.0, 0).as_dict()["value"])


def test_report_with_no_urgent_rows_is_nan_safe() -> None:
    examples = _examples([(0, 0, 0), (1, 1, 1), (2, 2, 2)], lang="es")
    result = report(examples, [0, 1, 3])
    overall = result["overall"]
    assert math.isnan(overall["urgent_recall"]["value"])
    assert math.isnan(overall["imminent_recall"]["value"])
    assert overall["calm_high_rate"]["value"] == 0.0
    assert overall["under_triaged_urgent"] == 0
    assert math.isnan(result["by_language"]["es"]["urgent_recall"]["value"])


# ------------------------------------------------------------------------ agreement
def test_kappa_and_macro_f1_by_hand() -> None:
    assert quadratic_kappa([0, 1, 2, 3], [0, 1, 2, 3]) == pytest.approx(1.0)
    assert math.isnan(quadratic_kappa([], []))
    # label 0: tp 1, fp 0, fn 1 -> 2/3; label 1: tp 2, fp 1, fn 0 -> 4/5
    assert macro_f1([0, 0, 1, 1], [0, 1, 1, 1]) == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert math.isnan(macro_f1([], []))
    # complete disagreement on two classes is worse than chance
    assert quadratic_kappa([0, 3, 0, 3], [3, 0, 3, 0]) < 0
