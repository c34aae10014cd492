"""A strategy that replays fixed targets, so an engine test states exactly what happens when."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from strategies.base import IndicatorCache, Strategy


class Scripted(Strategy):
    """Return the given targets bar by bar (cut to the bars' length), whatever the params."""

    name = "scripted"

    def __init__(self, targets: Sequence[float]) -> None:
        self.targets = np.asarray(targets, dtype=np.float64)

    def signal(self, bars: pd.DataFrame, p: Mapping[str, Any], ind: IndicatorCache) -> Any:
        return self.targets[: len(bars)]
