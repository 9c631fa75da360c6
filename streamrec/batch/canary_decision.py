"""Canary decisions from SQL over the ingested logs (run by `streamrec canary advance`, never by the server).

Both arms of a running canary log the same `canary_phase`, so one query per phase compares the
candidate's bundle version with the control's over the same period and traffic split:

- phase 1 (predictive metrics and latency): CTR = engaged events / impressions per version, and
  p99 of the per-request latency. Pass if the candidate's CTR is at least the control's minus a
  tolerance and its p99 is within a factor of the control's.
- phase 2 (fairness): creator exposure equity = normalised entropy of impressions over creator
  groups (language x new-creator flag, from features.item_features at the latest as_of); 1 means
  impressions spread evenly over groups. Pass if the candidate's equity is at least the control's
  minus a tolerance.

Every comparison needs a minimum number of impressions per arm; otherwise the answer is "wait".
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass
class Decision:
    """Whether to advance, and why."""

    advance: bool
    phase: int
    control: ArmStats | None
    candidate: ArmStats | None
    reasons: list[str] = field(default_factory=list)


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
        equity: dict[str, float] = {}
        if has_groups:
            for version, value in fetchall(
                con,
                """
                with latest as (
                    select item_id, item_creator_language_code || '/' || item_creator_is_new_flag::varchar as grp
                    from features.item_features
                    where as_of = (select max(as_of) from features.item_features)
                ),
                counts as (
                    select i.model_version, l.grp, count(*)::double as n
                    from ops.impressions i join latest l using (item_id)
                    where i.canary_phase = ?
                    group by all
                ),
                shares as (
                    select model_version, n / sum(n) over (partition by model_version) as p from counts
                )
                select model_version, -sum(p * ln(p)) / ln(?) from shares group by all
                """,
                [phase_label, N_CREATOR_GROUPS],  # equity 1.0 = impressions spread evenly over every group
            ):
                equity[version] = float(value)
    return {
        version: ArmStats(
            version=version,
            impressions=int(impressions),
            requests=int(requests),
            engaged=int(n_engaged),
            ctr=n_engaged / impressions if impressions else 0.0,
            p99_latency_ms=None if p99 is None else float(p99),
            exposure_equity=equity.get(version),
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
        if cand.ctr < ctl.ctr - thresholds.ctr_tolerance:
            decision.reasons.append(f"CTR {cand.ctr:.4f} is below control {ctl.ctr:.4f} - {thresholds.ctr_tolerance}")
        if cand.p99_latency_ms is not None and ctl.p99_latency_ms is not None:
            limit = ctl.p99_latency_ms * thresholds.p99_factor
            if cand.p99_latency_ms > limit:
                decision.reasons.append(f"p99 latency {cand.p99_latency_ms:.1f} ms exceeds {limit:.1f} ms")
    else:
        if cand.exposure_equity is None or ctl.exposure_equity is None:
            decision.reasons.append("no creator groups: features.item_features is missing (run `streamrec build`)")
        elif cand.exposure_equity < ctl.exposure_equity - thresholds.equity_tolerance:
            decision.reasons.append(
                f"creator exposure equity {cand.exposure_equity:.3f} is below control "
                f"{ctl.exposure_equity:.3f} - {thresholds.equity_tolerance}"
            )
    decision.advance = not decision.reasons
    return decision
