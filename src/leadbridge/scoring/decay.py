"""Decaying scores stored as additive weights.

A hit of score `s` at time `t` adds `s * 2 ** ((t - epoch) / half_life)` to its owner's weight.
The current score at `now` is `weight * 2 ** (-(now - epoch) / half_life)`. Because the factor is
the same for every row, totals update with one atomic `weight = weight + w` (safe with many
writers) and `ORDER BY weight` is `ORDER BY current score`. When the exponent grows large the
epoch moves forward (`rebase_factor`) and every weight is multiplied once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

REBASE_AFTER_HALF_LIVES = 600.0  # 2**600 is far from float overflow (2**1023)


@dataclass(frozen=True, slots=True)
class Decay:
    half_life_days: float
    epoch: datetime

    @property
    def half_life_seconds(self) -> float:
        return self.half_life_days * 86400.0

    def exponent(self, moment: datetime) -> float:
        return (moment - self.epoch).total_seconds() / self.half_life_seconds

    def weight(self, score: float, moment: datetime) -> float:
        """What a hit of `score` at `moment` adds to a weight."""
        if score == 0:
            return 0.0
        return score * math.pow(2.0, self.exponent(moment))

    def current(self, weight: float, now: datetime) -> float:
        """The decayed score that `weight` stands for at `now`."""
        if weight == 0:
            return 0.0
        return weight * math.pow(2.0, -self.exponent(now))

    def weight_threshold(self, score: float, now: datetime) -> float:
        """The weight above which the current score is above `score` (for SQL filters)."""
        return score * math.pow(2.0, self.exponent(now))

    def needs_rebase(self, now: datetime) -> bool:
        return self.exponent(now) > REBASE_AFTER_HALF_LIVES

    def rebased(self, new_epoch: datetime) -> tuple[Decay, float]:
        """A decay with a later epoch, and the factor every stored weight is multiplied by."""
        factor = math.pow(2.0, -(new_epoch - self.epoch).total_seconds() / self.half_life_seconds)
        return Decay(self.half_life_days, new_epoch), factor


class Bands:
    """Band thresholds, sorted once: calling it names the band of a score."""

    def __init__(self, bands: dict[str, float]) -> None:
        self.ordered = sorted(bands.items(), key=lambda kv: kv[1])

    def __call__(self, score: float) -> str:
        """The band whose threshold is the highest at or below `score` (else the lowest)."""
        chosen = self.ordered[0][0]
        for name, threshold in self.ordered:
            if score >= threshold:
                chosen = name
        return chosen


def band_for(score: float, bands: dict[str, float]) -> str:
    return Bands(bands)(score)
