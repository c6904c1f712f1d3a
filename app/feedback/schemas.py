"""Wire schemas of the post-chat survey. Strict: integers 1-5 or null, nothing else (no text)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

QUESTIONS = ("helped", "safer")
Scale = Annotated[int, Field(ge=1, le=5, strict=True)]


class SurveyIn(BaseModel):
    """``helped``: did this chat help? ``safer``: do you feel safer now? 1 (not at all) to 5
    (very much); leave one out (or null) to skip it, but answer at least one."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"helped": 4, "safer": 3}]}
    )

    helped: Scale | None = None
    safer: Scale | None = None

    @model_validator(mode="after")
    def _something(self) -> SurveyIn:
        if self.helped is None and self.safer is None:
            raise ValueError("answer at least one question")
        return self


class SurveyStored(BaseModel):
    session_id: str
    helped: int | None
    safer: int | None


class SurveySummary(BaseModel):
    """All answers so far (dashboard metrics; Prometheus has ``beacon_survey_answers_total``)."""

    answered: int
    mean: dict[str, float | None] = Field(description="per question, over those who answered it")
    counts: dict[str, dict[str, int]] = Field(description="per question, answers per point 1-5")
