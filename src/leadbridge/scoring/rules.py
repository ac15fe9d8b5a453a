"""Page and event rules: what a hit is called, its category and its score.

Page patterns:
- `re:<regex>`      searched in the full URL (case-insensitive);
- `/pricing*`       a glob on the path (`*` crosses `/`);
- `*://*/docs/*`    a glob on the full URL when it holds `://`;
- `example.com/x*`  otherwise a glob on host + path.
The first matching rule wins; no match gives the default page score and no category.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from leadbridge.caching import ShortKeyCache
from leadbridge.config import EventRuleConfig, PageRuleConfig
from leadbridge.errors import InputError


@dataclass(frozen=True, slots=True)
class RuleMatch:
    name: str
    category: str
    score: float


def _compile_glob(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern), re.IGNORECASE)


def compile_page_pattern(pattern: str) -> tuple[str, re.Pattern[str]]:
    """Return (what the pattern is matched against, compiled pattern); InputError if invalid."""
    if pattern.startswith("re:"):
        try:
            return "url", re.compile(pattern[3:], re.IGNORECASE)
        except re.error as exc:
            raise InputError(f"page rule pattern {pattern!r}: invalid regex: {exc}") from exc
    if pattern.startswith("/"):
        return "path", _compile_glob(pattern)
    if "://" in pattern:
        return "url", _compile_glob(pattern)
    return "hostpath", _compile_glob(pattern)


class RuleSet:
    """Compiled rules; `page()` and `event()` are cached per rule set."""

    def __init__(
        self,
        page_rules: Sequence[PageRuleConfig] = (),
        event_rules: Sequence[EventRuleConfig] = (),
        default_page_score: float = 1.0,
    ) -> None:
        self.page_rules = list(page_rules)
        self.event_rules = list(event_rules)
        self.default_page_score = default_page_score
        self._pages = [(r, *compile_page_pattern(r.pattern)) for r in self.page_rules]
        self._events = [
            (r, _compile_glob(r.category), _compile_glob(r.action), _compile_glob(r.name))
            for r in self.event_rules
        ]
        # the first page rule a URL matches
        self.page = ShortKeyCache(self._page, maxsize=50_000)
        self.event = lru_cache(maxsize=10_000)(self._event)

    @property
    def fingerprint(self) -> str:
        """Changes whenever anything that affects a hit's score changes."""
        doc = {
            "pages": [r.model_dump() for r in self.page_rules],
            "events": [r.model_dump() for r in self.event_rules],
            "default": self.default_page_score,
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]

    def _page(self, url: str) -> RuleMatch | None:
        parts = urlsplit(url)
        targets = {"url": url, "path": parts.path or "/", "hostpath": parts.netloc + parts.path}
        for rule, target, rx in self._pages:
            if rx.search(targets[target]) if target == "url" else rx.match(targets[target]):
                return RuleMatch(rule.name, rule.category, rule.score)
        return None

    def _event(self, category: str, action: str, name: str) -> RuleMatch | None:
        for rule, c, a, n in self._events:
            if c.match(category) and a.match(action) and n.match(name):
                return RuleMatch(rule.label or f"{category} / {action}", "event", rule.score)
        return None

    def score_page(self, url: str, title: str | None) -> RuleMatch:
        """Name, category and score for a page view (the default when no rule matches)."""
        found = self.page(url)
        if found is not None:
            return RuleMatch(found.name or (title or urlsplit(url).path), found.category,
                             found.score)
        return RuleMatch(title or urlsplit(url).path or "/", "", self.default_page_score)

    def score_event(self, category: str, action: str, name: str) -> RuleMatch:
        found = self.event(category, action, name)
        if found is not None:
            return found
        return RuleMatch(f"{category} / {action}", "event", 0.0)
