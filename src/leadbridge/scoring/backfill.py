"""Re-scoring history after rules or the half-life change.

Hits are read in key order a chunk at a time; each gets its name, category and score from the
current rules. Totals change by the *difference* between the new and the old weights of the
hits re-scored, added atomically, so hits the server stores meanwhile are not lost or doubled.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, func, select, update

from leadbridge.config import Settings
from leadbridge.scoring.decay import Decay
from leadbridge.scoring.ruleset import (
    ensure_epoch,
    load_decay,
    load_rules,
    mark_scored,
    rebase,
    scoring_fingerprint,
)
from leadbridge.store.state import get_state, set_state
from leadbridge.store.tables import contacts, hits, organisations
from leadbridge.tracking.request import EMAIL_OPEN, EVENT, FORM

Progress = Callable[[int, int], None]
SCORED_HALF_LIFE = "scored_half_life_days"
CHUNK = 5000


def rescore(engine: Engine, settings: Settings, progress: Progress | None = None) -> int:
    """Re-score every stored hit; returns how many hits changed."""
    with engine.begin() as conn:
        ensure_epoch(conn)
        rules = load_rules(conn, settings.scoring)
        new_decay = load_decay(conn, settings.scoring)
        old_half_life = float(get_state(conn, SCORED_HALF_LIFE) or new_decay.half_life_days)
        total = conn.execute(select(func.count()).select_from(hits)).scalar_one()
        blocked = set(conn.execute(select(organisations.c.id)
                                   .where(organisations.c.blocked.is_(True))).scalars())
    old_decay = Decay(old_half_life, new_decay.epoch)
    org_delta: dict[int, float] = defaultdict(float)
    contact_delta: dict[int, float] = defaultdict(float)
    changed = done = 0
    last_id: Any = None
    cols = [hits.c.id, hits.c.kind, hits.c.url, hits.c.page_title, hits.c.page_name,
            hits.c.category, hits.c.score, hits.c.is_bot, hits.c.occurred_at,
            hits.c.organisation_id, hits.c.contact_id, hits.c.event_category,
            hits.c.event_action, hits.c.event_name]
    while True:
        query = select(*cols).order_by(hits.c.id).limit(CHUNK)
        if last_id is not None:
            query = query.where(hits.c.id > last_id)
        with engine.connect() as conn:
            chunk = conn.execute(query).all()
        if not chunk:
            break
        updates: list[dict[str, Any]] = []
        for h in chunk:
            if h.kind in (EVENT, EMAIL_OPEN, FORM):
                m = rules.score_event(h.event_category or "", h.event_action or "",
                                      h.event_name or "")
            else:
                m = rules.score_page(h.url, h.page_title)
            score = 0.0 if h.is_bot else m.score
            name, category = m.name[:300], m.category or None
            if (score, name, category) != (h.score, h.page_name, h.category):
                updates.append({"hid": h.id, "s": score, "n": name, "c": category})
            if not h.is_bot:
                delta = (new_decay.weight(score, h.occurred_at)
                         - old_decay.weight(h.score, h.occurred_at))
                if delta and h.organisation_id is not None and h.organisation_id not in blocked:
                    org_delta[h.organisation_id] += delta
                if delta and h.contact_id is not None:
                    contact_delta[h.contact_id] += delta
        if updates:
            with engine.begin() as conn:
                conn.execute(update(hits).where(hits.c.id == bindparam("hid"))
                             .values(score=bindparam("s"), page_name=bindparam("n"),
                                     category=bindparam("c")), updates)
        changed += len(updates)
        done += len(chunk)
        last_id = chunk[-1].id
        if progress:
            progress(done, total)
    with engine.begin() as conn:
        for table, deltas in ((organisations, org_delta), (contacts, contact_delta)):
            if deltas:
                conn.execute(update(table).where(table.c.id == bindparam("tid"))
                             .values(score_weight=table.c.score_weight + bindparam("d")),
                             [{"tid": k, "d": v} for k, v in deltas.items()])
        mark_scored(conn, scoring_fingerprint(rules, new_decay))
        set_state(conn, SCORED_HALF_LIFE, f"{new_decay.half_life_days:g}")
    return changed


def needs_rescore(engine: Engine, settings: Settings) -> bool:
    """True when the stored scores were computed with other rules or another half-life."""
    with engine.connect() as conn:
        rules = load_rules(conn, settings.scoring)
        decay = load_decay(conn, settings.scoring)
        stored = get_state(conn, "scoring_fingerprint")
    return stored != scoring_fingerprint(rules, decay)


def mark_current(engine: Engine, settings: Settings) -> None:
    """Record the present rules as the ones the (empty or fresh) data was scored with."""
    with engine.begin() as conn:
        rules = load_rules(conn, settings.scoring)
        decay = load_decay(conn, settings.scoring)
        mark_scored(conn, scoring_fingerprint(rules, decay))
        set_state(conn, SCORED_HALF_LIFE, f"{decay.half_life_days:g}")


def rebase_if_needed(engine: Engine, settings: Settings, now: datetime) -> bool:
    """Move the decay epoch forward when it is far behind (see `ruleset.rebase`)."""
    with engine.begin() as conn:
        ensure_epoch(conn)
        return rebase(conn, load_decay(conn, settings.scoring), now) is not None
