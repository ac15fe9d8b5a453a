"""Small helpers shared by tests (import as `from support import ...`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from click.testing import Result
from sqlalchemy import Engine, text
from starlette.testclient import TestClient

BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
BOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def track(
    client: TestClient, site: int, url: str, *, ua: str = BROWSER_UA,
    headers: dict[str, str] | None = None, **params: str,
) -> Any:
    """One Matomo page view as the JavaScript tracker sends it (GET with a query string)."""
    q = {"idsite": str(site), "rec": "1", "url": url, **params}
    return client.get("/matomo.php", params=q, headers={"User-Agent": ua, **(headers or {})})


def rows(engine: Engine, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql), params))


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll until `condition()` holds (for work done by another process), else fail."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the time limit")
        time.sleep(0.05)


# The test client's requests come from 198.51.100.7; other addresses are sent with `cip`.
TEST_RANGES = """network,company,domain,type
198.51.100.0/24,Testclient Industries,testclient.example,company
203.0.113.0/25,Acme Corp,acme.example,company
203.0.113.128/25,Big Broadband,bigbb.example,isp
192.0.2.0/24,Cloudy Hosting,cloudy.example,hosting
"""


# -- the CLI -------------------------------------------------------------------------------

Cli = Callable[..., Result]


def words(text: str) -> str:
    """Output with Rich's wrapping and tab expansion undone."""
    return " ".join(text.split())


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result


def failed(result: Result, code: int, *needles: str) -> str:
    """Assert a clean failure: exit `code`, no traceback, stderr naming every needle."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"a traceback escaped: {result.exception!r}")
    text = words(result.stderr)
    assert "Traceback" not in result.output
    unwrapped = "".join(text.split())  # Rich folds long words (paths) across lines
    for needle in needles:
        assert "".join(needle.split()) in unwrapped, (needle, text)
    return text
