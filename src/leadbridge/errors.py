"""One exception tree for the hub.

    LeadBridgeError
    ├── ConfigError            settings or leadbridge.toml are invalid
    ├── InputError             a request, file row or CLI argument is malformed
    │   ├── UnknownSite        tracking for a site id the hub does not know
    │   ├── HostNotAllowed     tracking for a host name the site does not allow
    │   └── TooLarge           a request body over the size limit
    ├── AuthError              a missing, unknown or revoked API key
    ├── NotFound               a record asked for by id does not exist
    ├── CrmError               a CRM refused an action asked for on demand, or did not answer
    │   └── ConnectionBusy     a sync cycle of that connection is running: try again shortly
    └── StoreError             the database refused or is unreachable

Every error says what failed, for which record, and what a person can do.
"""

from __future__ import annotations


class LeadBridgeError(Exception):
    """Base of every error the hub raises on purpose."""


class ConfigError(LeadBridgeError):
    """Settings or leadbridge.toml are invalid."""


class InputError(LeadBridgeError):
    """Input from a person or a program is malformed; the message names what is wrong."""

    reason = "invalid"


class UnknownSite(InputError):
    reason = "unknown_site"


class HostNotAllowed(InputError):
    reason = "host_not_allowed"


class TooLarge(InputError):
    reason = "too_large"


class AuthError(LeadBridgeError):
    """A missing, unknown or revoked API key."""


class NotFound(LeadBridgeError):
    """A record asked for by id does not exist."""


class CrmError(LeadBridgeError):
    """A CRM refused an action a person asked for (create an account...) or did not answer;
    the message names the connection, the record and the CRM's reason."""


class ConnectionBusy(CrmError):
    """A sync cycle of the connection holds its lock; the action can be asked again soon."""


class StoreError(LeadBridgeError):
    """The database refused a write or cannot be reached."""
