"""What every read of scores needs: the decay, the bands, the public URL and one moment.

Scores are stored as weights (see `leadbridge.scoring.decay`); a view turns them into the
decayed score of *now* and its band, and turns a "score at least N" filter into a weight
threshold. Fixing `now` once per request keeps filters, ordering and shown scores consistent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from leadbridge.config import Settings
from leadbridge.scoring.decay import Decay, band_for


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ViewContext:
    """How to read scores at one moment."""

    decay: Decay
    bands: dict[str, float]
    public_url: str = ""
    now: datetime = field(default_factory=_utcnow)

    @classmethod
    def of(cls, settings: Settings, decay: Decay, now: datetime | None = None) -> ViewContext:
        return cls(decay, dict(settings.scoring.bands), settings.public_url, now or _utcnow())

    def score(self, weight: float | None) -> float:
        """The current, decayed score behind a stored weight, rounded for people."""
        return round(self.decay.current(weight or 0.0, self.now), 2)

    def band(self, score: float) -> str:
        return band_for(score, self.bands)

    def weight_at_least(self, score: float) -> float:
        """The stored weight at or above which the current score is at least `score`."""
        return self.decay.weight_threshold(score, self.now)

    def second_band_threshold(self) -> float | None:
        """The score where the lowest band ends; None when there is only one band."""
        thresholds = sorted(self.bands.values())
        return thresholds[1] if len(thresholds) > 1 else None

    def permalink(self, token: str) -> str:
        return f"{self.public_url}/p/{token}"
