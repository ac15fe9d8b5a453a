"""The running hub: settings, database, caches, rules and the group-commit writer.

One `Hub` per process. Admin changes anywhere bump a version in the database; the hub checks
it at most once a second and reloads sites, rules and keys when it moved.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from datetime import UTC, datetime

from sqlalchemy import Engine

from leadbridge.apikeys import ApiKey, hash_key, verify_key
from leadbridge.config import Settings
from leadbridge.hubsecret import hub_secret
from leadbridge.identify.resolvers import ResolverChain, build_chain
from leadbridge.scoring.decay import Decay
from leadbridge.scoring.rules import RuleSet
from leadbridge.scoring.ruleset import ensure_epoch, load_decay, load_rules
from leadbridge.sites import Site, list_sites
from leadbridge.store import make_engine
from leadbridge.store.db import sqlite_file
from leadbridge.store.state import config_version
from leadbridge.tracking.batch import BatchWriter
from leadbridge.tracking.groupcommit import GroupCommit
from leadbridge.tracking.intake import Intake

log = logging.getLogger(__name__)
_KEY_CACHE_SECONDS = 60.0


class Hub:
    def __init__(self, settings: Settings, engine: Engine | None = None, *,
                 serving: bool = False) -> None:
        """`serving`: the hub of `leadbridge serve`, which writes hits in a writer process
        when `tracking.writer` says so (tools and tests write on the event loop)."""
        self.settings = settings
        self.engine = engine or make_engine(
            settings.database_url, synchronous=settings.tracking.sqlite_synchronous
        )
        self.secret = hub_secret(settings)
        self.resolvers: ResolverChain = build_chain(settings.identify)
        self.trusted_proxies = [ipaddress.ip_network(p, strict=False)
                                for p in settings.tracking.trusted_proxies]
        self._trust_cache: dict[str, str] = {}
        self._client_cache: dict[tuple[str, str], str] = {}  # (peer, X-Forwarded-For)
        self._version: str | None = None
        self._checked = 0.0
        self._keys: dict[str, tuple[ApiKey | None, float]] = {}
        self.sites: dict[int, Site] = {}
        self.rules = RuleSet()
        with self.engine.begin() as conn:
            ensure_epoch(conn)
        self.decay = Decay(settings.scoring.half_life_days, datetime.now(UTC))
        self.reload()
        # a writer process opens the database itself: a file or a server, not memory
        in_memory = self.engine.dialect.name == "sqlite" and sqlite_file(self.engine) is None
        self.commit = GroupCommit(
            self.engine, BatchWriter(self.decay), settings.tracking.batch_max,
            durable=settings.tracking.sqlite_synchronous == "FULL",
            process=settings if serving and settings.tracking.writer == "process"
            and not in_memory else None)
        self.intake = Intake(self.sites, self.rules, self.resolvers, self.secret,
                             settings.privacy.ip_mask_bytes, settings.tracking.store_bots)

    def reload(self) -> None:
        """Read sites, rules and the decay epoch again."""
        with self.engine.connect() as conn:
            self._version = config_version(conn)
            self.sites = {s.id: s for s in list_sites(conn)}
            self.rules = load_rules(conn, self.settings.scoring)
            self.decay = load_decay(conn, self.settings.scoring)
        self._keys.clear()
        if hasattr(self, "intake"):
            self.intake.sites = self.sites
            self.intake.rules = self.rules
            self.commit.writer.decay = self.decay

    def refresh(self, force: bool = False) -> None:
        """Reload if another process (or the API) changed sites, keys or rules."""
        now = time.monotonic()
        if not force and now - self._checked < 1.0:
            return
        self._checked = now
        with self.engine.connect() as conn:
            version = config_version(conn)
        if version != self._version:
            self.reload()

    def api_key(self, clear: str) -> ApiKey | None:
        """The key behind a clear `Bearer`/`token_auth` value (cached for a minute)."""
        digest = hash_key(clear)
        cached = self._keys.get(digest)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        with self.engine.connect() as conn:
            key = verify_key(conn, clear)
        if len(self._keys) > 10_000:
            self._keys.clear()
        self._keys[digest] = (key, now + _KEY_CACHE_SECONDS)
        return key

    def client_ip(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The visitor's address: the peer, or X-Forwarded-For when the peer is a trusted proxy.

        The right-most address that is not a trusted proxy is the visitor (the left part of
        the header is whatever the client chose to send).
        """
        if not peer or not forwarded_for or not self.trusted_proxies:
            return peer
        key = (peer, forwarded_for)
        found = self._client_cache.get(key)
        if found is None:
            found = self._client_cache[key] = self._forwarded_client(peer, forwarded_for)
            if len(self._client_cache) > 100_000:
                self._client_cache.clear()
        return found

    def _forwarded_client(self, peer: str, forwarded_for: str) -> str:
        if not self._trusted(peer):
            return peer
        for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
            kind = self._address_kind(hop)
            if kind != "trusted":
                return hop if kind == "address" else peer
        return peer

    def _trusted(self, address: str) -> bool:
        return self._address_kind(address) == "trusted"

    def _address_kind(self, address: str) -> str:
        """'trusted' (a proxy we believe), 'address' (any other IP) or 'invalid'; cached."""
        known = self._trust_cache.get(address)
        if known is None:
            try:
                addr = ipaddress.ip_address(address)
                trusted = any(addr in net for net in self.trusted_proxies)
                known = "trusted" if trusted else "address"
            except ValueError:
                known = "invalid"
            if len(self._trust_cache) > 100_000:
                self._trust_cache.clear()
            self._trust_cache[address] = known
        return known

    def start(self) -> None:
        """Start the group-commit flusher (on the running event loop)."""
        self.commit.start()

    async def aclose_intake(self) -> None:
        await self.commit.aclose()

    def stop(self) -> None:
        """Flush counters and close the writer's connection (when no event loop serves)."""
        self.commit.close()

    def close(self) -> None:
        self.stop()
        self.engine.dispose()

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

