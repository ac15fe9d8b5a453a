"""Scoring rules: read them all, replace the API-managed ones, and re-score history.

Rules from `leadbridge.toml` are read-only here (change the file); the API manages its own
list, tried after them. Replacing rules answers 202 at once and re-scores stored hits in the
background, one run at a time per process, so totals are never adjusted twice.
"""

from __future__ import annotations

import logging
import threading
from typing import Literal

from fastapi import APIRouter, BackgroundTasks
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from leadbridge.api.deps import ConnDep, CurrentKey, HubDep
from leadbridge.config import EventRuleConfig, PageRuleConfig, Settings
from leadbridge.scoring.backfill import rescore
from leadbridge.scoring.ruleset import (
    load_rules,
    replace_stored_rules,
    scored_fingerprint,
    scoring_fingerprint,
    stored_event_rules,
    stored_page_rules,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/scoring", tags=["scoring"])
MAX_RULES = 5000
_rescoring = threading.Lock()

Source = Literal["config", "api"]


class PageRulePublic(PageRuleConfig):
    model_config = ConfigDict(extra="forbid")
    source: Source = Field(description="config (leadbridge.toml, read-only) or api")


class EventRulePublic(EventRuleConfig):
    model_config = ConfigDict(extra="forbid")
    source: Source


class ScoringRules(BaseModel):
    half_life_days: float = Field(description="a score halves after this many days")
    default_page_score: float = Field(description="score of a page no rule matches")
    bands: dict[str, float] = Field(description="band name -> lowest score in it")
    page_rules: list[PageRulePublic]
    event_rules: list[EventRulePublic]
    fingerprint: str = Field(description="identifies the rules and half-life now in force")
    scored_fingerprint: str | None = Field(description="what stored scores were computed with; "
                                           "differs from fingerprint while re-scoring")


class ScoringRulesUpdate(BaseModel):
    """The complete list of API-managed rules (the ones from the TOML file stay)."""

    model_config = ConfigDict(extra="forbid")
    page_rules: list[PageRuleConfig] = Field(default_factory=list, max_length=MAX_RULES)
    event_rules: list[EventRuleConfig] = Field(default_factory=list, max_length=MAX_RULES)


class RescoreAccepted(BaseModel):
    fingerprint: str
    rescoring: bool = Field(description="stored hits are being re-scored in the background")


def _rescore_in_background(engine: Engine, settings: Settings) -> None:
    with _rescoring:
        try:
            changed = rescore(engine, settings)
        except Exception:
            log.exception("re-scoring after a rules change failed; run `leadbridge rescore`")
            return
    log.info("re-scored history after a rules change: %d hits changed", changed)


@router.get("/rules", response_model=ScoringRules)
def get_rules(hub: HubDep, conn: ConnDep, _key: CurrentKey) -> ScoringRules:
    """Every rule in the order tried: the TOML file's first, then the API's."""
    scoring = hub.settings.scoring
    rules = load_rules(conn, scoring)
    return ScoringRules(
        half_life_days=hub.decay.half_life_days,
        default_page_score=scoring.default_page_score,
        bands=dict(scoring.bands),
        page_rules=[PageRulePublic(**r.model_dump(), source="config") for r in scoring.page_rules]
        + [PageRulePublic(**r.model_dump(), source="api") for r in stored_page_rules(conn)],
        event_rules=[EventRulePublic(**r.model_dump(), source="config")
                     for r in scoring.event_rules]
        + [EventRulePublic(**r.model_dump(), source="api") for r in stored_event_rules(conn)],
        fingerprint=scoring_fingerprint(rules, hub.decay),
        scored_fingerprint=scored_fingerprint(conn),
    )


@router.put("/rules", response_model=RescoreAccepted, status_code=202)
def put_rules(
    body: ScoringRulesUpdate, hub: HubDep, background: BackgroundTasks, _key: CurrentKey
) -> RescoreAccepted:
    """Replace the API-managed rules; stored hits are re-scored in the background.

    An invalid pattern is a 400 naming it, and nothing is changed.
    """
    with hub.engine.begin() as conn:
        replace_stored_rules(conn, body.page_rules, body.event_rules)
        fingerprint = scoring_fingerprint(load_rules(conn, hub.settings.scoring), hub.decay)
    hub.refresh(force=True)
    background.add_task(_rescore_in_background, hub.engine, hub.settings)
    return RescoreAccepted(fingerprint=fingerprint, rescoring=True)
