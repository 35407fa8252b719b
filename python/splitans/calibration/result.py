"""What calibration returns beside the codec: `CalibrationReport` (the choice, its drop with a
selection-adjusted interval, its p-value, what more data would confirm) and `CalibrationWarning`
for a run that could confirm nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .stats import prediction_interval


class CalibrationWarning(UserWarning):
    """`calibrate` could not confirm any candidate within the budget: the codec it returns (the
    most faithful) carries no guarantee."""


@dataclass
class CalibrationReport:
    """What ``calibrate`` chose and what it predicts for it (drops in percentage points)."""

    setting: str
    option: str
    fit: Dict[str, Any]
    metric: str
    budget_pp: float
    confidence: float
    #: True when the test part confirmed the returned codec within the budget (then, with
    #: probability at least ``confidence``, its drop on data like the calibration samples is
    #: within it); False when nothing could be confirmed and the most faithful candidate came
    #: back with no guarantee (`calibrate` warns then).
    confirmed: bool
    #: Mean bytes of a blob (every per-blob byte), measured on test-part samples.
    bytes_per_sample: float
    elements_per_sample: float
    codec_bytes: int
    #: Drop on the test part, and its two-sided interval adjusted for the selection: at level
    #: ``1 - (1 - confidence) / adjusted_for``, so that it holds for every candidate the chains
    #: could have returned at once, the returned one included.
    drop_pp: float
    drop_interval_pp: Tuple[float, float]
    #: The test part's counts: for accuracy, ``b`` right only without compression and ``c``
    #: right only with it; for agreement, ``b`` changed predictions.
    b: int
    c: int
    n: int
    p_value: float
    n_selection: int
    n_test: int
    #: The level at which the returned candidate was tested (0 when it was not confirmed).
    level: float = 0.0
    #: How many candidates the chains could have returned (the selection adjustment's ``m``).
    adjusted_for: int = 1
    #: The smallest candidate tested and not confirmed, smaller than the one returned, whose
    #: observed drop is below the budget: its setting, selection bytes, test-part drop (pp) and
    #: discordance, the level its chain tests at, and the paired samples (``samples``) at which
    #: that test would confirm it with 80% probability if its observed rates were the true ones.
    #: None if there is none.
    power: Optional[Dict[str, Any]] = None
    sensitivity: Optional[str] = None
    tried: List[Dict[str, Any]] = field(default_factory=list, repr=False)
    seconds: float = 0.0

    @property
    def met(self) -> bool:
        """The earlier name of `confirmed`."""
        return self.confirmed

    @property
    def bits_per_element(self) -> float:
        return 8 * self.bytes_per_sample / max(self.elements_per_sample, 1e-9)

    @property
    def ratio(self) -> float:
        """Compression ratio against float32."""
        return 4 * self.elements_per_sample / max(self.bytes_per_sample, 1e-9)

    def predict(self, n_new: int, level: float = 0.95) -> Tuple[float, float]:
        """Interval (pp) in which the drop measured on ``n_new`` new samples should fall, from
        the test part's counts (`prediction_interval`), adjusted for the selection as the drop's
        interval is: at level ``1 - (1 - level) / adjusted_for``."""
        adjusted = 1 - (1 - level) / max(self.adjusted_for, 1)
        lo, hi = prediction_interval(self.b, self.c, self.n, n_new, adjusted, paired=self.metric == "accuracy")
        return 100 * lo, 100 * hi

    def __str__(self) -> str:
        lo, hi = self.drop_interval_pp
        verdict = "confirmed within" if self.confirmed else "NOT confirmed within"
        text = (f"{self.setting}: {self.bytes_per_sample:,.1f} bytes/sample ({self.bits_per_element:.3f} b/el, "
                f"{self.ratio:.1f}x vs float32); {self.metric} drop {self.drop_pp:+.3f} pp on {self.n_test} test "
                f"samples [{lo:+.3f}, {hi:+.3f}] at {self.confidence:.0%} (selection-adjusted over "
                f"{self.adjusted_for}); {verdict} the {self.budget_pp} pp budget at {self.confidence:.0%} "
                f"confidence (p = {self.p_value:.3g})")
        if self.power:
            p = self.power
            text += (f"; the smallest candidate not confirmed, {p['setting']} ({p['drop_pp']:+.3f} pp, "
                     f"{p['discordance']:.2%} discordant), would need ~{p['samples']:,} paired samples")
        return text
