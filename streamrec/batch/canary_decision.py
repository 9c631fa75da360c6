"""Canary decisions from SQL over the ingested logs (run by `streamrec canary advance`, never by the server).

Both arms of a running canary log the same `canary_phase`, so one query per phase compares the
candidate's bundle version with the control's over the same period and traffic split:

- phase 1 (predictive metrics and latency): CTR = engaged events / impressions per version, and
  p99 of the per-request latency. The candidate's CTR minus the control's must be at least minus a
  tolerance, and its p99 at most a factor of the control's.
- phase 2 (fairness): creator exposure equity = normalised entropy of impressions over creator
  groups (language x new-creator flag, from features.item_features at the latest as_of); 1 means
  impressions spread evenly over groups. The candidate's equity minus the control's must be at least
  minus a tolerance.

Each comparison is judged by its 95% interval with the scorecard's rule (`streamrec.batch.gate.judge`):
PASS when the whole interval clears the bound, FAIL when it misses it, INCONCLUSIVE (wait, with about
how many more impressions or requests would decide it) otherwise. Intervals: Welch for the CTR
difference (impressions independent), order statistics of each arm's p99 combined conservatively for
the ratio, and the delta method for the entropy difference. A phase advances only when every comparison
PASSes; a FAIL says why; below a minimum number of impressions per arm the answer is "wait".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from streamrec.batch.gate import Z_95, Verdict, judge
from streamrec.contracts.groups import N_CREATOR_GROUPS
from streamrec.core.event_types import ENGAGED_EVENT_TYPES
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect, fetchall, table_exists


@dataclass(frozen=True)
class Thresholds:
    """How much worse than control a candidate may look and still advance."""

    min_impressions: int = 500  # per arm, in this phase
    ctr_tolerance: float = 0.01  # absolute CTR points the candidate may lose
    p99_factor: float = 1.25  # candidate p99 latency may be at most this times control's
    equity_tolerance: float = 0.02  # normalised-entropy points the candidate may lose


@dataclass
class ArmStats:
    """One bundle version's numbers within a phase."""

    version: str
    impressions: int
    requests: int
    engaged: int
    ctr: float
    p99_latency_ms: float | None
    exposure_equity: float | None = None
    p99_ci_ms: tuple[float, float] | None = None  # order-statistic 95% interval of the p99
    exposure_equity_standard_error: float | None = None  # delta method, impressions independent


@dataclass
class Decision:
    """Whether to advance, and why."""

    advance: bool
    phase: int
    control: ArmStats | None
    candidate: ArmStats | None
    reasons: list[str] = field(default_factory=list)
    status: str = "INSUFFICIENT_DATA"  # PASS (advance) | FAIL | INCONCLUSIVE (wait) | INSUFFICIENT_DATA (wait)
    verdicts: dict[str, Verdict] = field(default_factory=dict)  # per comparison


def p99_interval(latencies: list[float]) -> tuple[float, float] | None:
    """95% interval of the nearest-rank p99: order statistics at n·p ∓ z·sqrt(n·p·(1-p)) (+1), clamped to [1, n].

    The same ranks as evaluation.online_serving_health (docs/evaluation.md, "Serving health").
    """
    n = len(latencies)
    if n == 0:
        return None
    ordered = sorted(latencies)
    spread = Z_95 * math.sqrt(n * 0.99 * 0.01)
    low = min(max(math.floor(n * 0.99 - spread), 1), n)
    high = min(max(math.ceil(n * 0.99 + spread) + 1, 1), n)
    return ordered[low - 1], ordered[high - 1]


def _nearest_rank_p99(latencies: list[float]) -> float:
    """The value at rank ceil(0.99·n) of the sorted latencies (the scorecard's p99)."""
    return sorted(latencies)[max(math.ceil(0.99 * len(latencies)), 1) - 1]


def entropy_equity(counts: list[float], n_groups: int = N_CREATOR_GROUPS) -> tuple[float, float]:
    """Normalised entropy of impressions over groups and its delta-method standard error.

    H = -sum p ln p, Var(H) ~ (sum p (ln p)^2 - H^2) / n; both divided by ln(n_groups).
    """
    total = sum(counts)
    shares = [c / total for c in counts if c > 0]
    entropy = -sum(p * math.log(p) for p in shares)
    variance = max(sum(p * math.log(p) ** 2 for p in shares) - entropy**2, 0.0) / total
    scale = math.log(n_groups)
    return entropy / scale, math.sqrt(variance) / scale


def _arm_stats(settings: Settings, phase_label: str) -> dict[str, ArmStats]:
    engaged = ", ".join(f"'{e}'" for e in ENGAGED_EVENT_TYPES)
    with connect(settings, read_only=True) as con:
        if not table_exists(con, "ops", "impressions"):
            return {}
        has_groups = table_exists(con, "features", "item_features")
        rows = fetchall(
            con,
            f"""
            with imp as (
                select * from ops.impressions where canary_phase = ?
            ),
            requests as (
                select model_version, request_id, max(latency_ms) as latency_ms from imp group by all
            ),
            engaged as (
                select i.model_version, count(*) as n
                from ops.events e join imp i on i.request_id = e.request_id and i.item_id = e.item_id
                where e.event_type in ({engaged})
                group by all
            )
            select i.model_version, count(*) as impressions, count(distinct i.request_id) as requests,
                   coalesce(any_value(g.n), 0) as engaged,
                   (select quantile_cont(latency_ms, 0.99) from requests r where r.model_version = i.model_version)
            from imp i left join engaged g using (model_version)
            group by i.model_version
            """,
            [phase_label],
        )
        latencies: dict[str, list[float]] = {}
        for version, latency in fetchall(
            con,
            """
            select model_version, max(latency_ms) from ops.impressions
            where canary_phase = ? and latency_ms is not null group by model_version, request_id
            """,
            [phase_label],
        ):
            latencies.setdefault(version, []).append(float(latency))
        group_counts: dict[str, list[float]] = {}
        if has_groups:
            for version, count in fetchall(
                con,
                """
                with latest as (
                    select item_id, item_creator_language_code || '/' || item_creator_is_new_flag::varchar as grp
                    from features.item_features
                    where as_of = (select max(as_of) from features.item_features)
                )
                select i.model_version, count(*)::double as n
                from ops.impressions i join latest l using (item_id)
                where i.canary_phase = ?
                group by i.model_version, l.grp
                """,
                [phase_label],
            ):
                group_counts.setdefault(version, []).append(float(count))
    equity = {version: entropy_equity(counts) for version, counts in group_counts.items()}
    return {
        version: ArmStats(
            version=version,
            impressions=int(impressions),
            requests=int(requests),
            engaged=int(n_engaged),
            ctr=n_engaged / impressions if impressions else 0.0,
            p99_latency_ms=_nearest_rank_p99(latencies.get(version, []))
            if latencies.get(version)
            else (None if p99 is None else float(p99)),
            exposure_equity=equity[version][0] if version in equity else None,
            p99_ci_ms=p99_interval(latencies.get(version, [])),
            exposure_equity_standard_error=equity[version][1] if version in equity else None,
        )
        for version, impressions, requests, n_engaged, p99 in rows
    }


def decide(
    settings: Settings, phase: int, control: str, candidate: str, thresholds: Thresholds | None = None
) -> Decision:
    """Compare candidate with control in `phase` from ops.impressions / ops.events (run `streamrec ingest` first)."""
    thresholds = thresholds or Thresholds()
    stats = _arm_stats(settings, f"phase{phase}")
    ctl, cand = stats.get(control), stats.get(candidate)
    decision = Decision(advance=False, phase=phase, control=ctl, candidate=cand)
    for name, arm in (("control", ctl), ("candidate", cand)):
        if arm is None or arm.impressions < thresholds.min_impressions:
            seen = 0 if arm is None else arm.impressions
            decision.reasons.append(
                f"wait: {name} has {seen} impressions in phase {phase}, need {thresholds.min_impressions} "
                "(serve more traffic, then `streamrec ingest`)"
            )
    if decision.reasons:
        return decision
    assert ctl is not None and cand is not None
    if phase == 1:
        difference = cand.ctr - ctl.ctr
        se = math.sqrt(cand.ctr * (1 - cand.ctr) / cand.impressions + ctl.ctr * (1 - ctl.ctr) / ctl.impressions)
        _compare(
            decision,
            "CTR",
            "CTR difference (candidate - control)",
            difference,
            (difference - Z_95 * se, difference + Z_95 * se),
            -thresholds.ctr_tolerance,
            ">=",
            min(cand.impressions, ctl.impressions),
            "impressions per arm",
        )
        if cand.p99_ci_ms is not None and ctl.p99_ci_ms is not None and ctl.p99_latency_ms:
            ratio = (cand.p99_latency_ms or 0.0) / ctl.p99_latency_ms
            low = cand.p99_ci_ms[0] / ctl.p99_ci_ms[1] if ctl.p99_ci_ms[1] > 0 else None
            high = cand.p99_ci_ms[1] / ctl.p99_ci_ms[0] if ctl.p99_ci_ms[0] > 0 else None
            _compare(
                decision,
                "p99",
                "p99 latency ratio (candidate / control)",
                ratio,
                None if low is None or high is None else (low, high),
                thresholds.p99_factor,
                "<=",
                min(cand.requests, ctl.requests),
                "requests per arm",
            )
    else:
        if cand.exposure_equity is None or ctl.exposure_equity is None:
            decision.reasons.append("no creator groups: features.item_features is missing (run `streamrec build`)")
            decision.status = "INSUFFICIENT_DATA"
            return decision
        difference = cand.exposure_equity - ctl.exposure_equity
        se = math.hypot(cand.exposure_equity_standard_error or 0.0, ctl.exposure_equity_standard_error or 0.0)
        _compare(
            decision,
            "equity",
            "creator exposure equity difference (candidate - control)",
            difference,
            (difference - Z_95 * se, difference + Z_95 * se),
            -thresholds.equity_tolerance,
            ">=",
            min(cand.impressions, ctl.impressions),
            "impressions per arm",
        )
    statuses = {v.status for v in decision.verdicts.values()}
    decision.status = "FAIL" if "FAIL" in statuses else "INCONCLUSIVE" if statuses - {"PASS"} else "PASS"
    decision.advance = decision.status == "PASS"
    return decision


def _compare(
    decision: Decision,
    key: str,
    what: str,
    value: float,
    interval: tuple[float, float] | None,
    bound: float,
    direction: str,
    n: int,
    unit: str,
) -> None:
    """Judge one comparison with the gate's rule and record why it does not pass."""
    low, high = interval if interval is not None else (None, None)
    verdict = judge(value, low, high, bound, direction, n)
    decision.verdicts[key] = verdict
    shown = "no interval" if interval is None else f"95% CI [{interval[0]:.4f}, {interval[1]:.4f}]"
    if verdict.status == "FAIL":
        side = "below" if direction == ">=" else "above"
        decision.reasons.append(f"FAIL: {what} {value:.4f} ({shown}) is {side} {bound:g}")
    elif verdict.status != "PASS":
        more = f": about {verdict.samples_to_decide} more {unit} would decide it" if verdict.samples_to_decide else ""
        decision.reasons.append(f"wait (INCONCLUSIVE): {what} {value:.4f} ({shown}) straddles {bound:g}{more}")
