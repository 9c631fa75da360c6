"""`streamrec report`: the release scorecard in the terminal and as one self-contained HTML file with plots.

Everything is read from the published warehouse through one read-only connection: the scorecard
(`evaluation.scorecard`) and the evaluation models behind its plots, the request latencies in
`ops.impressions`, and, when `streamrec simulate` has run, the simulator's true effect
(`truth.simulation_runs`) so the SQL estimate's interval can be checked against the truth
(COVERED / NOT COVERED), and the oracle page beside the served and holdout pages
(`evaluation.simulation_oracle_lift`, docs/evaluation.md section 6). The report never judges anything
itself: PASS / FAIL / INCONCLUSIVE / INSUFFICIENT_DATA are the scorecard's (`docs/evaluation.md`), and
`dbt build` already failed on a FAIL. The HTML embeds every figure as a base64 PNG and its CSS inline: one
file to attach or archive.
"""

from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from rich.console import Console
from rich.table import Table

from streamrec.batch import report_plots
from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect, table_exists

STATUS_STYLE = {"PASS": "bold green", "FAIL": "bold red", "INCONCLUSIVE": "bold magenta", "INSUFFICIENT_DATA": "yellow"}
SCORECARD_COLUMNS = (
    "metric, area, model_version, value, ci_low, ci_high, threshold, direction, sample_size, min_sample_size, "
    "sample_unit, status, samples_to_decide, summary"
)
TRADEOFF_FILE = "fairness_tradeoff.json"  # bench/fairness.py writes it under $STREAMREC_HOME/reports
# docs/evaluation.md's order: offline quality, serving health, causal effect, fairness; others after, by name
METRIC_ORDER = (
    "retrieval_recall_at_500",
    "ranking_hit_at_10",
    "ranking_ndcg_at_10",
    "retrieval_recall_at_500_lift",
    "ranking_hit_at_10_lift",
    "ranking_ndcg_at_10_lift",
    "p99_latency_ms",
    "feature_store_hit_rate",
    "feature_snapshot_age_hours",
    "training_serving_skew_max_psi",
    "causal_ate_engagement",
    "naive_ctr_improvement",
    "creator_exposure_equity",
    "user_hit_at_10_disparity",
)
# estimate_name in online_causal_effects -> the simulator's true value in truth.simulation_runs
TRUE_EFFECT_COLUMNS = {"ate_engagement_rate": "true_ate_engagement_rate", "ate_watch_seconds": "true_ate_watch_seconds"}


@dataclass
class SimulationCheck:
    """The simulator's true ATE against the SQL estimate and its 95% interval."""

    estimate_name: str
    run_id: str
    true_value: float | None
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: str  # COVERED | NOT COVERED | NOT COMPARABLE
    note: str


@dataclass
class ReportData:
    """Everything the terminal table and the HTML need, read in one go."""

    warehouse: Path
    serving_version: str | None
    chosen_by: str | None
    scorecard: list[dict[str, Any]]
    exposure_groups: list[dict[str, Any]] = field(default_factory=list)
    creator_exposure: list[float] = field(default_factory=list)
    psi: list[tuple[str, float]] = field(default_factory=list)
    psi_days: tuple[str | None, str | None] = (None, None)  # (snapshot as_of, reference as_of) of the PSI
    psi_next_day: str | None = None  # the first feature day after the reference's, to compare instead
    tradeoff: dict[str, Any] | None = None  # bench/fairness.py's curve, when it ran on this home
    latencies_ms: list[float] = field(default_factory=list)
    effects: list[dict[str, Any]] = field(default_factory=list)
    age_bands: list[dict[str, Any]] = field(default_factory=list)
    simulation: list[SimulationCheck] = field(default_factory=list)
    oracle: dict[str, Any] | None = None  # evaluation.simulation_oracle_lift, latest run

    def metric(self, name: str) -> dict[str, Any] | None:
        """The scorecard row of one metric."""
        return next((row for row in self.scorecard if row["metric"] == name), None)


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    result = con.execute(sql, params or [])
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def _exists(con: duckdb.DuckDBPyConnection, relation: str) -> bool:
    schema, table = relation.split(".")
    return table_exists(con, schema, table)


def read_report_data(settings: Settings) -> ReportData:
    """Read the scorecard and everything the plots need; a missing scorecard names the command to run."""
    if not settings.warehouse_path.exists():
        raise StreamRecError(
            f"no warehouse at {settings.warehouse_path}: run `streamrec init` and `streamrec generate`"
        )
    with connect(settings, read_only=True) as con:
        if not _exists(con, "evaluation.scorecard"):
            raise StreamRecError(
                f"no evaluation.scorecard in {settings.warehouse_path}: run `streamrec ingest` and "
                "`streamrec build --select evaluation` first"
            )
        scorecard = sorted(
            _rows(con, f"select {SCORECARD_COLUMNS} from evaluation.scorecard"),
            key=lambda r: (
                METRIC_ORDER.index(r["metric"]) if r["metric"] in METRIC_ORDER else len(METRIC_ORDER),
                r["metric"],
            ),
        )
        version_rows = (
            _rows(con, "select model_version, chosen_by from evaluation.online_serving_version")
            if _exists(con, "evaluation.online_serving_version")
            else []
        )
        version = version_rows[0]["model_version"] if version_rows else None
        data = ReportData(
            warehouse=settings.warehouse_path,
            serving_version=version,
            chosen_by=version_rows[0]["chosen_by"] if version_rows else None,
            scorecard=scorecard,
        )
        if _exists(con, "evaluation.online_training_serving_skew"):
            skew = _rows(con, "select * from evaluation.online_training_serving_skew")
            data.psi = [(r["feature_name"], float(r["psi"])) for r in skew if r["psi"] is not None]
            days = {(r.get("snapshot_as_of"), r.get("reference_as_of")) for r in skew}
            if len(days) == 1:
                snapshot, reference = days.pop()
                data.psi_days = (_day(snapshot), _day(reference))
                if reference is not None and _exists(con, "features.user_features"):
                    later = _rows(
                        con, "select min(as_of) as day from features.user_features where as_of > ?", [reference]
                    )
                    data.psi_next_day = _day(later[0]["day"]) if later else None
        if version is not None:
            _read_version_data(con, data, version)
        data.simulation = _simulation_checks(con, data)
        data.oracle = _oracle_lift(con)
    data.tradeoff = _read_tradeoff(settings.home / "reports" / TRADEOFF_FILE, version)
    return data


def _day(value: Any) -> str | None:
    return None if value is None else str(value)[:10]


def _read_tradeoff(path: Path, version: str | None) -> dict[str, Any] | None:
    """bench/fairness.py's trade-off curve for the serving version, if it was measured on this home."""
    if not path.exists():
        return None
    try:
        curve = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # a broken file is no curve, not a failed report
    return curve if curve.get("version") == version and curve.get("points") else None


def psi_caption(data: ReportData) -> str:
    """The PSI figure's caption; says so when reference and snapshot are the same day (every PSI is 0 then)."""
    caption = (
        "Population stability index of every numeric feature, latest snapshot against the serving version's reference."
    )
    snapshot, reference = data.psi_days
    if snapshot is not None and snapshot == reference:
        instead = (
            f"compare the snapshot of {data.psi_next_day} instead (`streamrec build --as-of {data.psi_next_day}`)"
            if data.psi_next_day
            else "capture the reference from an earlier day, or compare a later feature build (`streamrec build "
            "--as-of` a day after " + snapshot + ")"
        )
        caption += (
            f" The reference and the latest snapshot are the same day ({snapshot}): every PSI is 0 by construction "
            f"and says nothing about drift; {instead}."
        )
    return caption


def _read_version_data(con: duckdb.DuckDBPyConnection, data: ReportData, version: str) -> None:
    if _exists(con, "evaluation.online_creator_exposure"):
        data.exposure_groups = _rows(
            con, "select * from evaluation.online_creator_exposure where model_version = ?", [version]
        )
    if _exists(con, "evaluation.online_impression_outcomes") and _exists(con, "features.item_features"):
        # every creator of the latest catalogue, unexposed ones as 0: a Lorenz curve needs the whole population
        data.creator_exposure = [
            float(r[0])
            for r in con.execute(
                """
                with creators as (
                    select distinct creator_id from features.item_features
                    where as_of = (select max(as_of) from features.item_features)
                ),
                exposure as (
                    select creator_id, sum(exposure_weight) as exposure
                    from evaluation.online_impression_outcomes
                    where model_version = ? and policy = 'personalized'
                    group by creator_id
                )
                select coalesce(exposure.exposure, 0.0)
                from creators left join exposure using (creator_id)
                """,
                [version],
            ).fetchall()
        ]
    if _exists(con, "ops.impressions"):
        data.latencies_ms = [
            float(r[0])
            for r in con.execute(
                "select max(latency_ms) from ops.impressions where model_version = ? and latency_ms is not null "
                "group by request_id",
                [version],
            ).fetchall()
        ]
    if _exists(con, "evaluation.online_causal_effects"):
        data.effects = _rows(
            con,
            "select estimate_name, is_causal, effect, ci_low, ci_high, treated_count, control_count "
            "from evaluation.online_causal_effects where model_version = ? order by estimate_name",
            [version],
        )
    if _exists(con, "evaluation.online_user_hit_rates"):
        data.age_bands = _rows(con, "select * from evaluation.online_user_hit_rates where model_version = ?", [version])


def _simulation_checks(con: duckdb.DuckDBPyConnection, data: ReportData) -> list[SimulationCheck]:
    """The latest simulation run's true ATEs against the SQL estimates of the serving version."""
    if not _exists(con, "truth.simulation_runs"):
        return []
    runs = _rows(con, "select * from truth.simulation_runs order by finished_at desc, run_id limit 1")
    if not runs:
        return []
    run = runs[0]
    notes: list[str] = []
    comparable = True
    if data.serving_version is None or run["model_versions"] != data.serving_version:
        comparable = False
        notes.append(f"run served {run['model_versions']}, the scorecard judges {data.serving_version}")
    if (
        comparable
        and _exists(con, "evaluation.online_impression_outcomes")
        and _exists(con, "truth.simulation_requests")
    ):
        # what the SQL estimate actually used: the evaluation tables, not ops (which may be ingested but not built)
        from_run, other = con.execute(
            """
            select
                count(distinct i.request_id) filter (where s.request_id is not null),
                count(distinct i.request_id) filter (where s.request_id is null)
            from evaluation.online_impression_outcomes i
            left join truth.simulation_requests s on s.request_id = i.request_id and s.run_id = ?
            where i.model_version = ? and i.policy in ('personalized', 'holdout')
            """,
            [run["run_id"], data.serving_version],
        ).fetchall()[0]
        if from_run == 0:
            comparable = False
            notes.append(
                "the run is not in the evaluation yet: `streamrec ingest`, then `streamrec build --select evaluation`"
            )
        elif other:
            comparable = False  # the estimate pools other traffic: its estimand is not this run's true ATE
            notes.append(
                f"the estimate pools {other} personalised/holdout requests from outside this run; "
                "compare on a log with only the simulation's traffic"
            )
        else:
            notes.append(f"the estimate uses exactly this run's {from_run} personalised/holdout requests")
    by_name = {e["estimate_name"]: e for e in data.effects}
    checks = []
    for name, column in TRUE_EFFECT_COLUMNS.items():
        truth, estimate = run.get(column), by_name.get(name, {})
        low, high = estimate.get("ci_low"), estimate.get("ci_high")
        if not comparable or truth is None or low is None or high is None or not math.isfinite(low + high):
            verdict = "NOT COMPARABLE"
        else:
            verdict = "COVERED" if low <= truth <= high else "NOT COVERED"
        checks.append(
            SimulationCheck(name, run["run_id"], truth, estimate.get("effect"), low, high, verdict, "; ".join(notes))
        )
    return checks


def _oracle_lift(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    """The latest simulation run's oracle comparison (evaluation.simulation_oracle_lift), if any."""
    if not _exists(con, "evaluation.simulation_oracle_lift"):
        return None
    rows = _rows(con, "select * from evaluation.simulation_oracle_lift where is_latest_run")
    return rows[0] if rows else None


# (label, column prefix) of the pages the oracle section compares, best first
ORACLE_PAGES = (
    ("oracle (top k by true relevance)", "oracle"),
    ("personalised (served policy)", "personalized"),
    ("holdout (popularity)", "holdout"),
)


def oracle_share_line(oracle: dict[str, Any]) -> str:
    """One sentence: the share of the oracle's lift over popularity that the served policy captured."""
    share = oracle["oracle_lift_share_ratio"]
    shown = "n/a (no lift over popularity)" if share is None else f"{share:.1%}"
    return (
        f"Personalisation captured {shown} of the oracle's lift over popularity "
        f"({_number(oracle['oracle_lift_engagement_rate'])} engagement rate available, "
        f"{oracle['causal_user_count']:,} causal users, run {oracle['simulation_run_id']})."
    )


def oracle_table(oracle: dict[str, Any]) -> Table:
    """Oracle, served and holdout pages valued by the ground truth (expected, over the causal users)."""
    table = Table(
        "page",
        "engaged slots / page",
        "engagement rate",
        "watch s / user",
        title="Against the best possible page (ground truth)",
        title_justify="left",
    )
    for label, prefix in ORACLE_PAGES:
        table.add_row(
            label,
            _number(oracle[f"{prefix}_engaged_slots_per_page"], 2),
            _number(oracle[f"{prefix}_engagement_rate"]),
            _number(oracle[f"{prefix}_watch_seconds"], 1),
        )
    return table


def _oracle_html(oracle: dict[str, Any] | None) -> str:
    if oracle is None:
        return ""
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(label)}</td><td class='num'>{e(_number(oracle[f'{prefix}_engaged_slots_per_page'], 2))}</td>"
        f"<td class='num'>{e(_number(oracle[f'{prefix}_engagement_rate']))}</td>"
        f"<td class='num'>{e(_number(oracle[f'{prefix}_watch_seconds'], 1))}</td></tr>"
        for label, prefix in ORACLE_PAGES
    )
    return (
        "<h2 id='oracle'>Against the best possible page</h2>"
        "<p>The simulator values, with the ground truth, the oracle page (the top k servable items by true "
        "relevance) beside the served and the holdout pages (evaluation.simulation_oracle_lift).</p>"
        "<table><tr><th>page</th><th>engaged slots / page</th><th>engagement rate</th><th>watch s / user</th></tr>"
        f"{rows}</table><p class='oracle-share'>{e(oracle_share_line(oracle))}</p>"
    )


def _decimals(*values: float | None) -> int:
    finite = [abs(v) for v in values if v is not None and math.isfinite(v)]
    return 1 if finite and max(finite) >= 100 else 4


def _number(value: float | None, decimals: int | None = None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{_decimals(value) if decimals is None else decimals}f}"


def _interval(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return ""
    decimals = _decimals(low, high)  # one precision for both ends
    return f"[{_number(low, decimals)}, {_number(high, decimals)}]"


def _value_and_interval(row: dict[str, Any]) -> tuple[str, str]:
    """A scorecard row's value and CI, milliseconds and seconds to 0.1, everything else to 4 decimals."""
    if not row["metric"].endswith(("_ms", "_seconds")):
        return _number(row["value"]), _interval(row["ci_low"], row["ci_high"])
    ends = [_number(v, 1) for v in (row["ci_low"], row["ci_high"])]
    return _number(row["value"], 1), "" if row["ci_low"] is None or row[
        "ci_high"
    ] is None else f"[{ends[0]}, {ends[1]}]"


def _sample(row: dict[str, Any]) -> str:
    size = "0" if row["sample_size"] is None else f"{row['sample_size']:,}"
    return f"{size} / {row['min_sample_size']:,} {row['sample_unit']}"


def scorecard_table(data: ReportData) -> Table:
    """The scorecard as a rich table: metric, value, 95% CI, threshold, n / minimum, status."""
    title = f"StreamRec scorecard - version {data.serving_version or 'none'}"
    if data.chosen_by:
        title += f" ({data.chosen_by})"
    table = Table(title=title, title_justify="left")
    table.add_column("metric", no_wrap=True)  # a metric's name is what a reader (and a test) looks for
    for name in ("area", "value", "95% CI", "threshold", "n / min"):
        table.add_column(name)
    table.add_column("status", no_wrap=True)
    for row in data.scorecard:
        status = row["status"]
        table.add_row(
            row["metric"],
            row.get("area") or "",
            *_value_and_interval(row),
            f"{row['direction']} {row['threshold']:g}",
            _sample(row),
            f"[{STATUS_STYLE.get(status, '')}]{status}[/]" + _to_decide(row),
        )
    return table


def _to_decide(row: dict[str, Any]) -> str:
    """` +N`: the extra sample (in the row's sample unit) an INCONCLUSIVE row needs, from the observed spread."""
    more = row.get("samples_to_decide")
    return "" if row["status"] != "INCONCLUSIVE" or more is None else f" +{more:,}"


def simulation_table(checks: list[SimulationCheck]) -> Table:
    """True ATE (simulator) against the SQL estimate's 95% interval."""
    table = Table(
        "estimate",
        "true ATE",
        "SQL estimate",
        "95% CI",
        "check",
        title=f"Simulation {checks[0].run_id}",
        title_justify="left",
    )
    for check in checks:
        style = {"COVERED": "bold green", "NOT COVERED": "bold red"}.get(check.verdict, "yellow")
        table.add_row(
            check.estimate_name,
            _number(check.true_value),
            _number(check.estimate),
            _interval(check.ci_low, check.ci_high),
            f"[{style}]{check.verdict}[/]",
        )
    return table


def print_report(data: ReportData, console: Console) -> None:
    """The terminal report: the scorecard, a count per status, the FAIL / INCONCLUSIVE diagnoses, the simulation."""
    console.print(scorecard_table(data))
    counts = {status: sum(row["status"] == status for row in data.scorecard) for status in STATUS_STYLE}
    console.print(", ".join(f"[{STATUS_STYLE[s]}]{n} {s}[/]" for s, n in counts.items()))
    for status in ("FAIL", "INCONCLUSIVE"):
        for row in data.scorecard:
            if row["status"] == status:
                console.print(
                    f"[{STATUS_STYLE[status]}]{status}[/] ({row.get('area') or 'scorecard'}) {row['summary']}",
                    highlight=False,
                )
    snapshot, reference = data.psi_days
    if snapshot is not None and snapshot == reference:
        console.print(f"note: {psi_caption(data).split('. ', 1)[1]}", highlight=False)
    if data.simulation:
        console.print(simulation_table(data.simulation))
        if data.simulation[0].note:
            console.print(f"note: {data.simulation[0].note}", highlight=False)
    if data.oracle is not None:
        console.print(oracle_table(data.oracle))
        console.print(oracle_share_line(data.oracle), highlight=False)


def figures(data: ReportData) -> list[tuple[str, str, bytes]]:
    """(id, caption, PNG) of every figure of the report, in order."""
    thresholds = {row["metric"]: row["threshold"] for row in data.scorecard}
    p99 = data.metric("p99_latency_ms")
    truths = {c.estimate_name: c.true_value for c in data.simulation if c.true_value is not None}
    return [
        (
            "exposure-share",
            "Position-weighted exposure share of creator groups against their share of the catalogue "
            "(personalised slots, 95% delta-method intervals).",
            report_plots.exposure_share_plot(data.exposure_groups),
        ),
        (
            "lorenz",
            "Lorenz curve of position-weighted exposure over all creators of the latest catalogue.",
            report_plots.lorenz_plot(data.creator_exposure),
        ),
        (
            "psi",
            psi_caption(data),
            report_plots.psi_plot(data.psi, thresholds.get("training_serving_skew_max_psi")),
        ),
        (
            "latency",
            "Latency of every logged request of the serving version (ops.impressions).",
            report_plots.latency_plot(
                data.latencies_ms, p99["value"] if p99 else None, thresholds.get("p99_latency_ms")
            ),
        ),
        (
            "effects",
            "Randomised-holdout ATEs (causal) beside the naive comparisons, with 95% Welch intervals; diamonds are "
            "the simulator's true ATE when a simulation ran.",
            report_plots.effects_plot(data.effects, truths),
        ),
        (
            "intersectional",
            "Intersectional creator exposure (language x new creator) and user Hit@10 by age band, with sample "
            "sizes; hatched groups are below the sample size needed to judge them.",
            report_plots.intersectional_plot(
                data.exposure_groups, thresholds.get("creator_exposure_equity"), data.age_bands
            ),
        ),
        (
            "exposure-tradeoff",
            "Exposure control trade-off over reserve caps (bench/fairness.py on this home): worst-group equity, "
            "creators never shown, and NDCG@10, Hit@10 and the simulator's true engagement relative to no control."
            + (f" Command: {data.tradeoff['command']}" if data.tradeoff else ""),
            report_plots.tradeoff_plot(
                data.tradeoff["points"] if data.tradeoff else [], thresholds.get("creator_exposure_equity")
            ),
        ),
    ]


CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 2rem auto; max-width: 1200px;
       color: #212121; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.95rem; }
th, td { border-bottom: 1px solid #e0e0e0; padding: 0.35rem 0.8rem; text-align: left; }
th { background: #f5f5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.PASS, .COVERED { color: #2e7d32; font-weight: 600; }
.FAIL, .NOT_COVERED { color: #c62828; font-weight: 700; }
.INSUFFICIENT_DATA, .NOT_COMPARABLE { color: #a15c00; }
.INCONCLUSIVE { color: #6a1b9a; font-weight: 600; }
figure { margin: 2rem 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9rem; } .meta { color: #666; }
"""


def render_html(data: ReportData, figure_list: list[tuple[str, str, bytes]]) -> str:
    """The self-contained HTML document (inline CSS, figures as data URIs, no scripts)."""
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(r['metric'])}</td><td>{e(r.get('area') or '')}</td>"
        f"<td class='num'>{e(_value_and_interval(r)[0])}</td>"
        f"<td class='num'>{e(_value_and_interval(r)[1])}</td>"
        f"<td class='num'>{e(r['direction'])} {r['threshold']:g}</td><td>{e(_sample(r))}</td>"
        f"<td class='{e(r['status'])}'>{e(r['status'] + _to_decide(r))}</td><td>{e(r['summary'] or '')}</td></tr>"
        for r in data.scorecard
    )
    simulation = ""
    if data.simulation:
        sim_rows = "".join(
            f"<tr><td>{e(c.estimate_name)}</td><td class='num'>{e(_number(c.true_value))}</td>"
            f"<td class='num'>{e(_number(c.estimate))}</td><td class='num'>{e(_interval(c.ci_low, c.ci_high))}</td>"
            f"<td class='{e(c.verdict.replace(' ', '_'))}'>{e(c.verdict)}</td></tr>"
            for c in data.simulation
        )
        simulation = (
            f"<h2>Simulation check ({e(data.simulation[0].run_id)})</h2>"
            "<p>The simulator knows the true effect of personalisation (truth.simulation_runs); the SQL estimate's "
            "95% interval should cover it.</p>"
            "<table><tr><th>estimate</th><th>true ATE</th><th>SQL estimate</th><th>95% CI</th><th>check</th></tr>"
            f"{sim_rows}</table><p class='meta'>{e(data.simulation[0].note)}</p>"
        )
    figs = "".join(
        f"<figure id='{e(fid)}'><img alt='{e(fid)}' src='{report_plots.data_uri(png)}'>"
        f"<figcaption>{e(caption)}</figcaption></figure>"
        for fid, caption, png in figure_list
    )
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>StreamRec report - {e(data.serving_version or 'no version')}</title><style>{CSS}</style></head><body>"
        f"<h1>StreamRec evaluation report</h1><p class='meta'>version {e(data.serving_version or 'none')} "
        f"({e(data.chosen_by or 'no traffic yet')}), warehouse {e(str(data.warehouse))}, generated {generated}. "
        "Definitions: docs/evaluation.md.</p>"
        "<h2>Scorecard</h2><p class='meta'>PASS: the 95% interval clears the threshold; FAIL: it misses it; "
        "INCONCLUSIVE: it straddles it (with the extra sample that would decide it).</p>"
        "<table><tr><th>metric</th><th>area</th><th>value</th><th>95% CI</th><th>threshold</th>"
        f"<th>n / min</th><th>status</th><th>summary</th></tr>{rows}</table>"
        f"{simulation}{_oracle_html(data.oracle)}<h2>Figures</h2>{figs}</body></html>"
    )


def write_html(path: Path, document: str) -> None:
    """Write the HTML atomically (temp file + rename): a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(document, encoding="utf-8")
    os.replace(temporary, path)


def default_html_path(settings: Settings) -> Path:
    """Where `streamrec report` writes the HTML unless told otherwise."""
    return settings.home / "reports" / "report.html"


def report(settings: Settings, html_path: Path | None = None, console: Console | None = None) -> Path:
    """Print the scorecard (and simulation check) and write the HTML report; return its path."""
    console = console or Console()
    data = read_report_data(settings)
    print_report(data, console)
    target = (html_path or default_html_path(settings)).resolve()
    write_html(target, render_html(data, figures(data)))
    console.print(f"HTML report: {target}", highlight=False)
    return target
