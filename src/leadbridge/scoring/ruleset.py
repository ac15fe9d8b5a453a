"""Where the rules live: `leadbridge.toml` (read-only here) and the database (the API's)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, delete, insert, select, update

from leadbridge.config import EventRuleConfig, PageRuleConfig, ScoringSettings
from leadbridge.scoring.decay import Decay
from leadbridge.scoring.rules import RuleSet, compile_page_pattern
from leadbridge.store.state import bump_config_version, get_state, set_state
from leadbridge.store.tables import contacts, event_rules, hub_state, organisations, page_rules

DECAY_EPOCH = "decay_epoch"
RULES_FINGERPRINT = "scoring_fingerprint"


def stored_page_rules(conn: Connection) -> list[PageRuleConfig]:
    rows = conn.execute(select(page_rules).order_by(page_rules.c.position, page_rules.c.id))
    return [PageRuleConfig(pattern=r.pattern, name=r.name, category=r.category, score=r.score)
            for r in rows]


def stored_event_rules(conn: Connection) -> list[EventRuleConfig]:
    rows = conn.execute(select(event_rules).order_by(event_rules.c.position, event_rules.c.id))
    return [EventRuleConfig(category=r.category, action=r.action, name=r.name, label=r.label,
                            score=r.score) for r in rows]


def load_rules(conn: Connection, scoring: ScoringSettings) -> RuleSet:
    """Rules from the TOML file first, then the ones managed through the API."""
    return RuleSet(
        [*scoring.page_rules, *stored_page_rules(conn)],
        [*scoring.event_rules, *stored_event_rules(conn)],
        scoring.default_page_score,
    )


def replace_stored_rules(
    conn: Connection, pages: list[PageRuleConfig], events: list[EventRuleConfig]
) -> None:
    """Replace the API-managed rules (the TOML ones stay); validates every pattern first."""
    for rule in pages:
        compile_page_pattern(rule.pattern)
    conn.execute(delete(page_rules))
    conn.execute(delete(event_rules))
    if pages:
        conn.execute(insert(page_rules), [{"position": i, **r.model_dump()}
                                          for i, r in enumerate(pages)])
    if events:
        conn.execute(insert(event_rules), [{"position": i, **r.model_dump()}
                                           for i, r in enumerate(events)])
    bump_config_version(conn)


def load_decay(conn: Connection, scoring: ScoringSettings) -> Decay:
    """The decay in force; before any hit is stored, the epoch is today (see `ensure_epoch`)."""
    raw = get_state(conn, DECAY_EPOCH)
    epoch = datetime.fromisoformat(raw) if raw else _today()
    return Decay(scoring.half_life_days, epoch)


def _today() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def ensure_epoch(conn: Connection) -> None:
    """Fix the decay epoch the first time the hub runs."""
    if get_state(conn, DECAY_EPOCH) is None:
        set_state(conn, DECAY_EPOCH, _today().isoformat())


def rebase(conn: Connection, decay: Decay, now: datetime) -> Decay | None:
    """Move the epoch to `now` and scale every weight once, if the epoch is far behind.

    Compare-and-set on the stored epoch, so two processes never scale twice.
    """
    if not decay.needs_rebase(now):
        return None
    new, factor = decay.rebased(now)
    moved = conn.execute(
        update(hub_state)
        .where(hub_state.c.key == DECAY_EPOCH, hub_state.c.value == decay.epoch.isoformat())
        .values(value=now.isoformat())
    ).rowcount
    if moved != 1:
        return None
    for table in (organisations, contacts):
        conn.execute(update(table).values(score_weight=table.c.score_weight * factor))
    bump_config_version(conn)
    return new


def scored_fingerprint(conn: Connection) -> str | None:
    return get_state(conn, RULES_FINGERPRINT)


def mark_scored(conn: Connection, fingerprint: str) -> None:
    set_state(conn, RULES_FINGERPRINT, fingerprint)


def scoring_fingerprint(rules: RuleSet, decay: Decay) -> str:
    """What the stored scores were computed with: the rules and the half-life."""
    return f"{rules.fingerprint}:{decay.half_life_days:g}"
