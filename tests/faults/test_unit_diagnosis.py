"""Issue 11 case 15: the PSI unit diagnosis names every ratio between two time units, whatever the contract's unit.

Dividing raw watch seconds by 60 moves `user_watch_time_30d_hours` by 1/60, which is no ratio between
hours and another unit; it used to fail the PSI test without a hint. The candidates the PSI test
matches against are rendered here by dbt itself (`dbt compile --inline`, one call for every unit and
pair), and the matching is checked for each pair with the test's own tolerance.
"""

from __future__ import annotations

import itertools
import os
import subprocess

import pytest

from streamrec.batch.build import dbt_command
from streamrec.core.settings import Settings

SECONDS_PER = {"milliseconds": 0.001, "seconds": 1.0, "minutes": 60.0, "hours": 3600.0, "days": 86400.0}
TOLERANCE = 0.15  # streamrec_psi: abs(mean_ratio / candidate - 1) <= 0.15

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def candidates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[float, str, str]]]:
    """unit -> [(ratio, label, hint)] as the dbt macro `unit_factor_candidates` returns them."""
    settings = Settings(home=tmp_path_factory.mktemp("unit_diagnosis") / "home").ensure()
    inline = (
        "{% for unit in " + repr(list(SECONDS_PER)) + " %}{% for c in streamrec.unit_factor_candidates(unit) %}"
        "CANDIDATE|{{ unit }}|{{ c.ratio }}|{{ c.label }}|{{ c.hint }}\n{% endfor %}{% endfor %}"
    )
    env = {**os.environ, "STREAMREC_HOME": str(settings.home), "STREAMREC_WAREHOUSE": str(settings.warehouse_path)}
    done = subprocess.run(
        dbt_command(settings, ["compile", "--quiet", "--inline", inline]),
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result: dict[str, list[tuple[float, str, str]]] = {}
    for line in done.stdout.splitlines():
        if line.startswith("CANDIDATE|"):
            _, unit, ratio, label, hint = line.split("|", 4)
            result.setdefault(unit, []).append((float(ratio), label, hint))
    assert set(result) == set(SECONDS_PER)
    return result


def _diagnose(candidates: list[tuple[float, str, str]], mean_ratio: float) -> str | None:
    """The first candidate the PSI test's CASE picks for this mean ratio (same order, same tolerance)."""
    for ratio, label, hint in candidates:
        if abs(mean_ratio / ratio - 1) <= TOLERANCE:
            return f"≈ {label}: {hint}"
    return None


@pytest.mark.parametrize("unit", list(SECONDS_PER))
@pytest.mark.parametrize(("source", "target"), list(itertools.permutations(SECONDS_PER, 2)))
def test_every_time_unit_ratio_is_diagnosed(candidates, unit: str, source: str, target: str) -> None:
    # A value in `source` units handled as `target` units (or converted once too often) scales by source/target.
    ratio = SECONDS_PER[source] / SECONDS_PER[target]
    hint = _diagnose(candidates[unit], ratio * 1.05)  # a little sampling noise on top
    assert hint is not None, (unit, source, target, ratio)
    assert f"contract says {unit}" in hint


def test_a_direct_unit_mix_up_still_says_which_unit_it_looks_like(candidates) -> None:
    assert _diagnose(candidates["seconds"], 1 / 60) == "≈ 1/60: looks like minutes, contract says seconds"
    assert _diagnose(candidates["hours"], 60) == "≈ 60: looks like minutes, contract says hours"


def test_watch_seconds_divided_by_60_in_an_hours_feature_is_diagnosed(candidates) -> None:
    hint = _diagnose(candidates["hours"], 1 / 60)
    assert hint == "≈ 1/60: looks like an extra seconds-to-minutes conversion upstream, contract says hours"


def test_candidates_are_distinct_beyond_the_tolerance(candidates) -> None:
    for unit, listed in candidates.items():
        for (a, label_a, _), (b, label_b, _) in itertools.combinations(listed, 2):
            assert abs(a / b - 1) > 2 * TOLERANCE, (unit, label_a, label_b)
