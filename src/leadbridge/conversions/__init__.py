"""Offline conversions: calls and conversions in (API, CSV, drop folder), matched to the web
visitor or call that led to them, then attributed (`attribution`) and reported (`reports`).

Intake: `fields` (one row's validation), `calls`, `importer` (streamed CSV imports),
`dropfolder` (local folder or SFTP/FTP server polled by the hub). A matched conversion reaches
attribution as a `MatchedConversion` (`model`).
"""

from __future__ import annotations

from leadbridge.conversions.model import MatchedConversion

__all__ = ["MatchedConversion"]
