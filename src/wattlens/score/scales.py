"""Rating scales: Wh per 1,000 queries -> 1 to 5 stars against the published range of a task.

Registered on the `wattlens_rating_scales` hook; `wattlens score --scale NAME` picks one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def stars_leaderboard(wh: float, lo: float, hi: float) -> int:
    """The leaderboard rule: the min-max range cut into five equal bands; the lowest band is 5 stars."""
    if hi <= lo:
        return 5
    band = min(max(int((wh - lo) / (hi - lo) * 5), 0), 4)
    return 5 - band


def stars_log(wh: float, lo: float, hi: float) -> int:
    """Our default: five equal bands on a log scale, so one outlier cannot push everyone into 5 stars."""
    if hi <= lo or wh <= 0:
        return 5
    band = min(max(int((math.log(wh) - math.log(lo)) / (math.log(hi) - math.log(lo)) * 5), 0), 4)
    return 5 - band


@dataclass(frozen=True)
class LogScale:
    name: str = "log"

    def stars(self, wh_per_1000: float, low: float, high: float) -> int:
        return stars_log(wh_per_1000, low, high)


@dataclass(frozen=True)
class LeaderboardScale:
    name: str = "leaderboard-2025-02"

    def stars(self, wh_per_1000: float, low: float, high: float) -> int:
        return stars_leaderboard(wh_per_1000, low, high)


SCALES = (LogScale(), LeaderboardScale())
