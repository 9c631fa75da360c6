"""The release gate's rule in Python: the canary's phase decisions judge intervals exactly as the scorecard does.

The scorecard applies the same rule in SQL (`dbt_project/macros/evaluation/gate.sql`, macros `gate_status`
and `samples_to_decide`); docs/evaluation.md, "The scorecard and thresholds", states it once:

- INSUFFICIENT_DATA: no value, or fewer than the minimum sample;
- PASS: the whole 95% interval clears the threshold (low >= t for '>=', high <= t for '<=');
- FAIL: the whole interval misses it (high < t for '>=', low > t for '<=');
- INCONCLUSIVE: otherwise (or no interval), with about how many more sample units would decide it:
  the half-width h on the threshold's side shrinks like 1/sqrt(n), so n * (h / |value - t|)^2 - n more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Verdict:
    """A gate decision and, when INCONCLUSIVE, the extra sample that would decide it (None if none would)."""

    status: str  # PASS | FAIL | INCONCLUSIVE | INSUFFICIENT_DATA
    samples_to_decide: int | None = None


def judge(
    value: float | None,
    ci_low: float | None,
    ci_high: float | None,
    threshold: float,
    direction: str,
    sample_size: int | None = None,
    min_sample_size: int = 0,
) -> Verdict:
    """The status of one estimate with its 95% interval against a threshold (`direction` '>=' or '<=')."""
    if direction not in (">=", "<="):
        raise ValueError(f"direction must be '>=' or '<=', not {direction!r}")
    if value is None or (sample_size or 0) < min_sample_size:
        return Verdict("INSUFFICIENT_DATA")
    if ci_low is None or ci_high is None:
        return Verdict("INCONCLUSIVE")
    if direction == ">=":
        if ci_low >= threshold:
            return Verdict("PASS")
        if ci_high < threshold:
            return Verdict("FAIL")
    else:
        if ci_high <= threshold:
            return Verdict("PASS")
        if ci_low > threshold:
            return Verdict("FAIL")
    return Verdict("INCONCLUSIVE", samples_to_decide(value, ci_low, ci_high, threshold, sample_size))


def samples_to_decide(value: float, ci_low: float, ci_high: float, threshold: float, n: int | None) -> int | None:
    """More sample units needed for the interval to stop straddling the threshold, at the observed spread."""
    if n is None or value == threshold:
        return None
    half = value - ci_low if value > threshold else ci_high - value
    return max(1, math.ceil(n * (half / abs(value - threshold)) ** 2) - n)
