"""User-agent classification (bot or browser; browser, OS, device), cached per string.

User agents repeat a lot, so each distinct string is classified once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import ua_parser
from crawlerdetect import CrawlerDetect

_crawlers = CrawlerDetect()

_MOBILE_OS = {"Android", "iOS", "Windows Phone", "BlackBerry OS", "KaiOS"}
_TABLET_HINTS = ("iPad", "Tablet", "Kindle", "Silk")


@dataclass(frozen=True, slots=True)
class UserAgentInfo:
    is_bot: bool
    browser: str | None
    os: str | None
    device: str  # desktop | smartphone | tablet | bot | unknown


@lru_cache(maxsize=20_000)
def classify(user_agent: str) -> UserAgentInfo:
    """Classify one user-agent string; an empty one counts as a bot (no browser sends none)."""
    if not user_agent.strip():
        return UserAgentInfo(True, None, None, "bot")
    if _crawlers.isCrawler(user_agent):
        return UserAgentInfo(True, None, None, "bot")
    parsed = ua_parser.parse(user_agent)
    browser = parsed.user_agent.family if parsed.user_agent else None
    os_name = parsed.os.family if parsed.os else None
    if any(h in user_agent for h in _TABLET_HINTS) or (
        os_name == "Android" and "Mobile" not in user_agent
    ):
        device = "tablet"
    elif os_name in _MOBILE_OS or "Mobile" in user_agent:
        device = "smartphone"
    elif os_name:
        device = "desktop"
    else:
        device = "unknown"
    return UserAgentInfo(False, browser if browser != "Other" else None,
                         os_name if os_name != "Other" else None, device)
