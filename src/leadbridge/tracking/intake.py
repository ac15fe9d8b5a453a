"""From a validated tracking request to a prepared hit: site and host check, bots, identity,
reverse-IP lookup, masking, channel and score. Pure per-request work, no database access."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from leadbridge.errors import HostNotAllowed, InputError, UnknownSite
from leadbridge.identify.contacts import Identity, identity_from_uid, read_contact_token
from leadbridge.identify.resolvers import IpInfo, ResolverChain
from leadbridge.privacy.ipmask import mask_ip
from leadbridge.scoring.rules import RuleSet
from leadbridge.sites import Site
from leadbridge.store.ids import new_hex_id
from leadbridge.tracking.batch import PreparedHit
from leadbridge.tracking.channels import classify_channel
from leadbridge.tracking.matomo import url_host
from leadbridge.tracking.request import EMAIL_OPEN, EVENT, FORM, PING, TrackingRequest
from leadbridge.tracking.useragents import classify


class Skipped(Exception):
    """A valid request that must not be stored (Do-Not-Track, opt-out, bots when not kept)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Intake:
    sites: dict[int, Site]
    rules: RuleSet
    resolvers: ResolverChain
    secret: str
    ip_mask_bytes: int = 2
    store_bots: bool = True

    def prepare(self, req: TrackingRequest, now: datetime, *, dnt: bool = False) -> PreparedHit:
        """Raise UnknownSite / HostNotAllowed / InputError, or Skipped for DNT and opt-out."""
        site = self.sites.get(req.site_id)
        if site is None:
            raise UnknownSite(f"site {req.site_id} is not a known site")
        page_host = url_host(req.url)
        if not site.allows(page_host):
            raise HostNotAllowed(f"host {page_host!r} is not allowed for site {site.id}")
        if dnt:
            raise Skipped("do_not_track")
        if req.opted_out:
            raise Skipped("opt_out")

        ua = classify(req.user_agent)
        if ua.is_bot and not self.store_bots:
            raise Skipped("bot")
        ip = req.ip or ""
        info = self.resolvers.lookup(ip) if ip else IpInfo(None, None)

        identity: Identity | None = None
        if req.user_id:
            identity = identity_from_uid(req.user_id)
            if req.contact_name:
                identity = Identity(identity.email, identity.external_id, req.contact_name)
        elif req.contact_token:
            email = read_contact_token(self.secret, req.contact_token)
            if email is None:
                raise InputError("lb_ct is not a valid contact token (forged or cut short)")
            identity = Identity(email=email)

        visitor_key = req.visitor_key or _fingerprint(site.id, ip, req.user_agent, req.lang)
        occurred_at = req.occurred_at or now

        if req.kind in (EVENT, EMAIL_OPEN, FORM):
            match = self.rules.score_event(req.event_category or "", req.event_action or "",
                                           req.event_name or "")
        else:
            match = self.rules.score_page(req.url, req.action_name)
        row = {
            "id": new_hex_id(),
            "site_id": site.id,
            "occurred_at": occurred_at,
            "kind": req.kind,
            "url": req.url,
            "page_title": req.action_name,
            "page_name": match.name[:300],
            "category": match.category or None,
            "score": 0.0 if ua.is_bot else match.score,
            "is_bot": ua.is_bot,
            "ip_masked": mask_ip(ip, self.ip_mask_bytes) if ip else None,
            "referrer": req.referrer,
            "channel": classify_channel(
                referrer=req.referrer, page_host=page_host, campaign_name=req.campaign_name,
                campaign_medium=req.campaign_medium, campaign_source=req.campaign_source,
                click_id=req.click_id,
            ),
            "campaign_name": req.campaign_name,
            "campaign_source": req.campaign_source,
            "campaign_medium": req.campaign_medium,
            "campaign_keyword": req.campaign_keyword,
            "campaign_content": req.campaign_content,
            "event_category": req.event_category,
            "event_action": req.event_action,
            "event_name": req.event_name,
            "event_value": req.event_value,
            "device": ua.device,
            "browser": ua.browser,
            "os": ua.os,
            "country": info.country,
            "lang": (req.lang or "")[:100] or None,
            "resolution": req.resolution,
            "time_on_page": None,
        }
        return PreparedHit(site.id, visitor_key, row, info.org, identity, req.kind == PING)


def _fingerprint(site_id: int, ip: str, user_agent: str, lang: str | None) -> str:
    """A visitor id for trackers that send none (as Matomo's config id): 16 hex characters."""
    raw = f"{site_id}|{ip}|{user_agent}|{lang or ''}".encode()
    return hashlib.blake2b(raw, digest_size=8).hexdigest()
