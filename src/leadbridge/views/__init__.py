"""Read-side queries shared by the API, the permalink pages and the CLI.

Each module answers one question about stored data (Website Visitors, hits, contacts,
organisations) with SQLAlchemy Core that runs on SQLite and PostgreSQL alike. Scores come out
decayed to one moment (`ViewContext`), listings as a `Page` with the total behind it.
"""

from __future__ import annotations

from leadbridge.views.contacts import Contact, ContactFilter, get_contact, list_contacts
from leadbridge.views.context import ViewContext
from leadbridge.views.hits import Hit, HitFilter, list_hits, recent_hits
from leadbridge.views.organisations import OrganisationFilter, list_organisations
from leadbridge.views.paging import MAX_PER_PAGE, Page
from leadbridge.views.website_visitors import (
    SAVED_VIEWS,
    SavedView,
    WebsiteVisitor,
    WebsiteVisitorFilter,
    get_website_visitor,
    list_website_visitors,
    saved_view,
    survivor_token,
    website_visitor_by_token,
    with_view,
)

__all__ = [
    "MAX_PER_PAGE",
    "SAVED_VIEWS",
    "Contact",
    "ContactFilter",
    "Hit",
    "HitFilter",
    "OrganisationFilter",
    "Page",
    "SavedView",
    "ViewContext",
    "WebsiteVisitor",
    "WebsiteVisitorFilter",
    "get_contact",
    "get_website_visitor",
    "list_contacts",
    "list_hits",
    "list_organisations",
    "list_website_visitors",
    "recent_hits",
    "saved_view",
    "survivor_token",
    "website_visitor_by_token",
    "with_view",
]
