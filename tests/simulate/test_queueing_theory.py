"""The engine against closed forms: with Beacon's policy out of the way (one urgency level, one
volunteer who accepts at once), a shift is an M/M/1 queue."""

from __future__ import annotations

from app.simulate.engine import Outcome, generate_arrivals, simulate
from app.simulate.policies import POLICIES
from tests.simulate.helpers import PROMPT_VOLUNTEERS, scenario

ARRIVALS_PER_H = 30.0  # lambda = 0.5 / min
SERVICE_MIN = 1.0  # mu = 1 / min
HOURS = 2000  # about 60,000 arrivals: the sample mean's error is then ~1-2 %


def test_mean_wait_matches_mm1() -> None:
    mm1 = scenario(
        f"""
shift_hours = {HOURS}
drain_hours = 0
[arrivals]
per_hour = {ARRIVALS_PER_H}
[urgency]
none = 0
low = 1
moderate = 0
high = 0
imminent = 0
[duration_min]
low = {SERVICE_MIN}
[patience_min]
low = 0
[[volunteers]]
count = 1
capacity = 1
{PROMPT_VOLUNTEERS}
"""
    )
    arrivals = generate_arrivals(mm1, seed=1)
    result = simulate(mm1, POLICIES["beacon"], seed=1, arrivals=arrivals)
    lam, mu = ARRIVALS_PER_H / 60.0, 1.0 / SERVICE_MIN
    rho = lam / mu
    answered = [v for v in result.visits if v.outcome is Outcome.answered]
    assert len(answered) > 0.999 * len(arrivals) > 55_000
    mean_wait_min = sum(v.wait_s for v in answered) / len(answered) / 60.0
    theory_min = rho / (mu - lam)  # M/M/1: Wq = rho / (mu - lambda)
    assert abs(mean_wait_min - theory_min) / theory_min < 0.05, (mean_wait_min, theory_min)
    # The server is busy a share rho of the time, and a share 1 - rho of people never wait.
    assert abs(result.utilisation - rho) < 0.02
    no_wait = sum(v.wait_s == 0 for v in answered) / len(answered)
    assert abs(no_wait - (1 - rho)) < 0.02
