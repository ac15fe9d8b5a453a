"""Caches keyed by text from the outside world (URLs, queries): bounded in entries and in the
size of each entry."""

from __future__ import annotations

from collections.abc import Callable
from functools import _CacheInfo, lru_cache
from typing import Generic, TypeVar

R = TypeVar("R")

# longer keys are computed each time rather than kept: a site's pages are shorter, and long
# ones sent to fill memory would each hold an entry
LONGEST_KEY = 512


class ShortKeyCache(Generic[R]):
    """`fn` with an LRU cache of `maxsize` entries for keys of up to `LONGEST_KEY`
    characters; a longer key is computed each time."""

    __slots__ = ("_cached", "_fn")

    def __init__(self, fn: Callable[[str], R], maxsize: int) -> None:
        self._fn = fn
        self._cached = lru_cache(maxsize=maxsize)(fn)

    def __call__(self, key: str) -> R:
        return self._cached(key) if len(key) <= LONGEST_KEY else self._fn(key)

    def cache_info(self) -> _CacheInfo:
        return self._cached.cache_info()
