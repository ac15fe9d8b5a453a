"""Keep credentials out of logs and error text.

`redact(text, secrets)` replaces known secret values, and text that plainly carries a
credential (`password=...`, `"token": "..."`, `Authorization: Bearer ...`, `token_auth=...`,
`https://user:pass@host`), with `***`.

`install_redaction()` applies the same to every log record of the process. A filter on the
`leadbridge` logger alone would not be enough: Python consults a logger's filters only for
records logged through that very logger, not for those of its children
(`leadbridge.connectors.bottlecrm.client`) or of libraries (uvicorn's access log, httpx), so
the filter also runs from the log-record factory. Secret values the process learns (decrypted
credentials) are added with `remember_secrets`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

MASK = "***"
# shorter values are not replaced wherever they occur (they would blank out ordinary
# words); the credential patterns below still hide them in `password=...` form
MIN_SECRET_LENGTH = 4

# the key's own prefix (`new_` in `new_password=`) stays outside the match: only the value
# is replaced, and a leading `[\w]*` would make the search quadratic in long words
_CREDENTIAL_KEY = (
    r"(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|credential|private[_-]?key)"
    r"[A-Za-z0-9_-]*"
)
_Rule = tuple[tuple[str, ...], re.Pattern[str], Callable[[re.Match[str]], str]]
# (words one of which the lower-cased text must hold for the pattern to apply, pattern,
# replacement); the words let most log lines skip every regular expression
_RULES: tuple[_Rule, ...] = (
    # Authorization: Bearer abc / "authorization": "JWT abc"
    (("authorization",),
     re.compile(r"(?i)(\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)"
                r"((?:bearer|basic|jwt|token|digest|negotiate)\s+)?[^\s\"',;}]+"),
     lambda m: f"{m.group(1)}{m.group(2) or ''}{MASK}"),
    # password=abc, token_auth=abc, "client_secret": "abc", 'password': 'abc', token: abc
    (("pass", "pwd", "secret", "token", "key", "credential"),
     re.compile(rf"(?i)({_CREDENTIAL_KEY}[\"']?\s*[:=]\s*)"
                r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^\s&,;\"'<>}\])]+)"),
     lambda m: m.group(1) + (m.group(2)[0] + MASK + m.group(2)[0]
                             if m.group(2)[0] in "\"'" else MASK)),
    # Bearer abc / JWT abc, without the header name
    (("bearer", "jwt"),
     re.compile(r"(?i)\b(bearer|jwt)\s+[A-Za-z0-9._~+/=-]{8,}"),
     lambda m: f"{m.group(1)} {MASK}"),
    # scheme://user:password@host
    (("@",),
     re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@"),
     lambda m: f"{m.group(1)}{MASK}@"),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with each secret value and each credential-looking assignment replaced by ***."""
    values = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    lowered = text.lower()
    for words, pattern, replace in _RULES:
        if any(word in lowered for word in words):
            text = pattern.sub(replace, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a log record so neither its message nor its traceback shows a secret."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Also hide these values from now on."""
        fresh = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}
        if fresh - self._secrets:
            with self._lock:
                self._secrets = self._secrets | fresh

    @property
    def secrets(self) -> frozenset[str]:
        return self._secrets

    def filter(self, record: logging.LogRecord) -> bool:
        self.scrub(record)
        return True

    def scrub(self, record: logging.LogRecord) -> None:
        """Redact the record in place; keep `msg` and `args` apart when that is safe, since
        some formatters (uvicorn's access log) read `args` themselves."""
        secrets = self._secrets
        try:
            message = record.getMessage()
        except Exception:
            message = None  # logging reports the broken format itself
        if message is not None:
            clean = redact(message, secrets)
            if clean != message:
                record.msg, record.args = _split_clean(record, clean, secrets)
        if record.exc_info and record.exc_info[0] is not None:
            text = record.exc_text or _FORMATTER.formatException(record.exc_info)
            clean = redact(text, secrets)
            if clean != text:
                record.exc_text, record.exc_info = clean, None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, secrets)


_FORMATTER = logging.Formatter()


def _split_clean(
    record: logging.LogRecord, clean: str, secrets: frozenset[str]
) -> tuple[Any, Any]:
    """New (msg, args): each argument redacted on its own if that yields a clean message,
    else the whole redacted message with no arguments."""
    args = record.args
    if isinstance(args, tuple) and args:
        fixed = tuple(_clean_arg(a, secrets) for a in args)
        try:
            candidate = str(record.msg) % fixed
        except (TypeError, ValueError, KeyError):
            candidate = None
        if candidate is not None and redact(candidate, secrets) == candidate:
            return record.msg, fixed
    return clean, ()


def _clean_arg(arg: object, secrets: frozenset[str]) -> object:
    if isinstance(arg, str):
        return redact(arg, secrets)
    if isinstance(arg, int | float | bool) or arg is None:
        return arg
    text = str(arg)
    clean = redact(text, secrets)
    return arg if clean == text else clean


class _Installed:
    filter: RedactingFilter | None = None
    lock = threading.Lock()


def install_redaction() -> RedactingFilter:
    """Redact every log record of this process from now on (idempotent); return the filter,
    whose `add` hides further secret values."""
    with _Installed.lock:
        if _Installed.filter is not None:
            return _Installed.filter
        the_filter = RedactingFilter()
        logging.getLogger("leadbridge").addFilter(the_filter)
        make_record = logging.getLogRecordFactory()

        def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = make_record(*args, **kwargs)
            try:
                the_filter.scrub(record)
            except Exception:  # a log call must not fail, nor leak what was not checked
                record.msg, record.args = "(log message withheld: redaction failed)", ()
                record.exc_info = record.exc_text = record.stack_info = None
            return record

        logging.setLogRecordFactory(redacting_factory)
        _Installed.filter = the_filter
        return the_filter


def remember_secrets(values: Iterable[str]) -> None:
    """Hide these values from every log record of this process from now on."""
    install_redaction().add(values)

