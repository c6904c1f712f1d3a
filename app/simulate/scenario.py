"""A shift to simulate, read from a TOML file (docs/simulation.md lists every key).

Every figure a scenario leaves out has a documented default, and Beacon's own policy knobs come
from ``[settings]`` — the same names as the ``BEACON_*`` variables, validated by the server's
:class:`~app.core.config.Settings`, so a scenario can only set what the server could.
"""

from __future__ import annotations

import math
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.core.config import Settings
from app.triage.types import Level

LEVEL_NAMES: tuple[str, ...] = tuple(level.name for level in Level)

# The Settings fields the routing and escalation policy read: the only ones a scenario may set.
POLICY_SETTINGS: tuple[str, ...] = (
    "queue_wait_ceiling_s",
    "offer_timeout_s",
    "offer_decline_cooldown_s",
    "language_fallback_s",
    "high_urgency_slots",
    "handoff_deadline_s",
    "escalate_high",
    "handoff_deadline_high_s",
)

Share = Annotated[float, Field(ge=0)]
Minutes = Annotated[float, Field(gt=0)]


class ScenarioError(ValueError):
    """The scenario file is missing or invalid; the message says where."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Arrivals(_Strict):
    # First messages per hour on average over the shift (a Poisson process).
    per_hour: Annotated[float, Field(gt=0)] = 40.0
    # Relative rate of each hour (rescaled to average 1); empty means a flat rate. A shorter
    # list repeats, so one value per hour of a day fits a shift of any length.
    shape: list[Annotated[float, Field(ge=0)]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _some_rate(self) -> Self:
        if self.shape and not any(self.shape):
            raise ValueError("shape needs at least one hour with a rate above 0")
        return self


class PerLevel(_Strict):
    none: float
    low: float
    moderate: float
    high: float
    imminent: float

    def of(self, level: int) -> float:
        value: float = getattr(self, LEVEL_NAMES[level])
        return value


class UrgencyMix(_Strict):
    none: Share = 0.15
    low: Share = 0.35
    moderate: Share = 0.30
    high: Share = 0.13
    imminent: Share = 0.07
    # Instead of the shares above: triage a CSV of first messages with the real engine.
    triage_csv: Path | None = None
    text_column: str = "text"

    def shares(self) -> list[float]:
        values = [float(getattr(self, name)) for name in LEVEL_NAMES]
        total = sum(values)
        if total <= 0:
            raise ValueError("urgency shares add up to 0")
        return [v / total for v in values]


class Durations(_Strict):
    # Mean chat length in minutes, per level.
    none: Minutes = 8.0
    low: Minutes = 25.0
    moderate: Minutes = 35.0
    high: Minutes = 45.0
    imminent: Minutes = 50.0
    # "exponential", or "lognormal" with this coefficient of variation (std / mean).
    distribution: str = Field(default="exponential", pattern="^(exponential|lognormal)$")
    cv: Annotated[float, Field(gt=0)] = 0.8

    def mean_s(self, level: int) -> float:
        minutes: float = getattr(self, LEVEL_NAMES[level])
        return minutes * 60.0


class Patience(_Strict):
    # Mean minutes a visitor waits before leaving (exponential); 0 means they never leave.
    none: Annotated[float, Field(ge=0)] = 10.0
    low: Annotated[float, Field(ge=0)] = 15.0
    moderate: Annotated[float, Field(ge=0)] = 20.0
    high: Annotated[float, Field(ge=0)] = 25.0
    imminent: Annotated[float, Field(ge=0)] = 15.0

    def mean_s(self, level: int) -> float:
        minutes: float = getattr(self, LEVEL_NAMES[level])
        return minutes * 60.0


class Offers(_Strict):
    # Mean seconds a volunteer takes to accept an offer.
    accept_s: Annotated[float, Field(ge=0)] = 6.0
    # Shares of offers declined (after decline_s on average) and left to time out.
    decline: Annotated[float, Field(ge=0, le=1)] = 0.05
    decline_s: Annotated[float, Field(ge=0)] = 5.0
    no_answer: Annotated[float, Field(ge=0, le=1)] = 0.02

    @model_validator(mode="after")
    def _shares(self) -> Self:
        if self.decline + self.no_answer > 1:
            raise ValueError("decline + no_answer is more than 1")
        return self


class Handoff(_Strict):
    # Whether a hotline partner is configured at all (without one nobody is handed off).
    partner: bool = True
    # Share of handoffs the partner accepts; the others fail and stay in the queue.
    partner_available: Annotated[float, Field(ge=0, le=1)] = 0.9
    # Mean seconds from the deadline to the partner's "accepted" callback.
    partner_response_s: Annotated[float, Field(ge=0)] = 20.0


class Shift(_Strict):
    count: Annotated[int, Field(ge=0)]
    start_h: Annotated[float, Field(ge=0)] = 0.0
    end_h: Annotated[float, Field(gt=0)] | None = None
    languages: list[str] = Field(default_factory=lambda: ["en"], min_length=1)
    capacity: Annotated[int, Field(ge=1, le=20)] = 3


class Scenario(_Strict):
    name: str = "scenario"
    description: str = ""
    seed: int = 1
    shift_hours: Annotated[float, Field(gt=0, le=24 * 366)] = 12.0
    # After the shift ends the queue is worked off for at most this long (no new arrivals).
    drain_hours: Annotated[float, Field(ge=0)] = 2.0
    policies: list[str] = Field(default_factory=lambda: ["fifo", "static", "beacon"])
    arrivals: Arrivals = Field(default_factory=Arrivals)
    urgency: UrgencyMix = Field(default_factory=UrgencyMix)
    # Share of visitors by language (None: no locale given, anyone may answer).
    languages: dict[str, Share] = Field(default_factory=lambda: {"en": 1.0})
    duration_min: Durations = Field(default_factory=Durations)
    patience_min: Patience = Field(default_factory=Patience)
    offers: Offers = Field(default_factory=Offers)
    handoff: Handoff = Field(default_factory=Handoff)
    volunteers: list[Shift] = Field(default_factory=lambda: [Shift(count=10)], min_length=1)
    settings: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Self:
        unknown = sorted(set(self.settings) - set(POLICY_SETTINGS))
        if unknown:
            raise ValueError(
                f"[settings] may set {', '.join(POLICY_SETTINGS)}; not {', '.join(unknown)}"
            )
        if not self.languages or sum(self.languages.values()) <= 0:
            raise ValueError("languages: give at least one language with a share above 0")
        for shift in self.volunteers:
            if shift.end_h is not None and shift.end_h <= shift.start_h:
                raise ValueError("a volunteer shift must end after it starts")
        from app.simulate.policies import POLICIES  # the names live with the policies

        bad = [p for p in self.policies if p not in POLICIES]
        if bad or not self.policies:
            raise ValueError(f"policies: choose from {', '.join(POLICIES)}")
        return self

    def beacon_settings(self) -> Settings:
        """The server's settings with this scenario's policy values; the rest at their defaults.

        ``model_validate`` (not the constructor) so that ``BEACON_*`` variables in the
        environment cannot change a simulation: the scenario file alone decides."""
        try:
            return Settings.model_validate(self.settings)
        except ValidationError as exc:
            raise ScenarioError(_problems("[settings]", exc)) from None

    def rate_per_s(self, hour: int) -> float:
        shape = self.arrivals.shape
        if not shape:
            return self.arrivals.per_hour / 3600.0
        hours = max(1, math.ceil(self.shift_hours))
        weights = [shape[h % len(shape)] for h in range(hours)]
        mean = sum(weights) / len(weights)
        return self.arrivals.per_hour * weights[hour % hours] / mean / 3600.0


def _problems(source: str, exc: ValidationError) -> str:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}"
        for e in exc.errors(include_input=False, include_url=False)[:5]
    )
    return f"invalid {source}: {problems}"


def parse_scenario(raw: str, *, source: str = "scenario", base: Path | None = None) -> Scenario:
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source} is not valid TOML: {exc}") from None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_problems(source, exc)) from None
    csv_path = scenario.urgency.triage_csv
    if csv_path is not None and not csv_path.is_absolute() and base is not None:
        urgency = scenario.urgency.model_copy(update={"triage_csv": base / csv_path})
        scenario = scenario.model_copy(update={"urgency": urgency})
    scenario.beacon_settings()  # fail now, with the file's name, not halfway through a run
    return scenario


def shipped_scenarios() -> list[str]:
    folder = resources.files("app.simulate") / "scenarios"
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def load_scenario(name_or_path: str) -> Scenario:
    """A path to a TOML file, or the name of a shipped scenario (``app/simulate/scenarios``)."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        try:
            raw = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ScenarioError(f"cannot read scenario {str(path)!r}: {exc}") from None
        return parse_scenario(raw, source=f"scenario {str(path)!r}", base=path.parent)
    if name_or_path not in shipped_scenarios():
        raise ScenarioError(
            f"no scenario file {name_or_path!r} and no shipped scenario of that name "
            f"(shipped: {', '.join(shipped_scenarios())})"
        )
    shipped = resources.files("app.simulate") / "scenarios" / f"{name_or_path}.toml"
    return parse_scenario(shipped.read_text(encoding="utf-8"), source=f"scenario {name_or_path!r}")
