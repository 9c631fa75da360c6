"""`streamrec demo` (what `make demo` runs): the whole loop on a demo-sized synthetic dataset.

init → generate → build → reference capture → build (with the PSI test armed) → train → promote →
offline metrics → serve over HTTP driven by the simulator → ingest → evaluation → scorecard.
Every step is the same function the CLI command of that name runs.
"""

from __future__ import annotations

import os
import sys
import time

import httpx
from rich.console import Console
from rich.table import Table

from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect, table_exists
from streamrec.lab.server_process import ApiProcess

# Piped output (make demo in CI, logs) gets a width that fits the scorecard instead of rich's 80 columns.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 140)
# Thresholds report as FAIL in the scorecard instead of stopping the demo before it is printed.
WARN_ONLY = {"evaluation_threshold_severity": "warn"}
# A larger holdout than production's 5% so the demo's few thousand requests give both arms enough users.
DEMO_HOLDOUT_SHARE = 0.2
# Interactions per user of the demo world (the generator's default is 40). docs/data.md, "Demo size", says
# why: more history per user is what lets any model learn the world, within `make demo`'s three minutes.
DEMO_INTERACTIONS_PER_USER = 100


def _step(title: str) -> None:
    console.rule(f"[bold]{title}")


def run_demo(
    settings: Settings,
    users: int = 2_000,
    items: int = 1_000,
    requests: int = 3_000,
    interactions_per_user: int = DEMO_INTERACTIONS_PER_USER,
    seed: int = 7,
    tradeoff: bool = True,
) -> None:
    """Run every stage in order on a fresh STREAMREC_HOME; raise StreamRecError at the first failure.

    `seed` fixes the synthetic world and the training (the simulator uses seed + 4, so the default 7 keeps
    its historical 11); `tradeoff` adds a short exposure-control trade-off curve for the report.
    """
    from streamrec.batch.build import build
    from streamrec.batch.ingest import ingest_logs
    from streamrec.batch.migrate import init_db
    from streamrec.batch.reference import capture
    from streamrec.batch.report import report
    from streamrec.lab.generate import generate
    from streamrec.models_ml.registry import promote
    from streamrec.models_ml.train import train

    started = time.monotonic()
    os.environ["STREAMREC_HOME"] = str(settings.home)  # dbt's profile reads it
    _step("1. init: alembic upgrade head")
    console.print(f"migration {init_db(settings)} in {settings.warehouse_path}")
    _step("2. generate synthetic StreamRec data")
    console.print(
        generate(settings, users=users, items=items, days=60, seed=seed, interactions=users * interactions_per_user)
    )
    _step("3. dbt build: staging, contract-enforced features, training table, tests")
    build(settings, variables=WARN_ONLY)  # a re-run evaluates the last run's impressions: thresholds warn here
    _step("4. reference capture: distributions the PSI test compares against")
    console.print(capture(settings, tag="demo"))
    _step("5. dbt build again, PSI test armed")
    build(settings, variables=WARN_ONLY)  # a re-run evaluates the last run's impressions: thresholds warn here
    _step("6. train: two-tower + FAISS + ranker, one co-versioned bundle")
    console.print(train(settings, epochs=3, seed=seed, version=None))
    version = _newest_version(settings)
    _step(f"7. promote {version}")
    console.print(promote(settings, version=version, by="demo", reason="make demo"))
    _step("8. offline evaluation in SQL (dbt models/evaluation)")
    build(settings, select="offline_metrics", variables=WARN_ONLY)
    _print_offline_metrics(settings)
    _step(f"9. serve over HTTP and drive it with {requests} simulated requests")
    _serve_and_simulate(settings, requests=requests, seed=seed + 4)
    _step("10. ingest the impression and event logs into the warehouse")
    console.print(ingest_logs(settings))
    _step("11. evaluation in SQL: causal effect, off-policy, fairness, skew, thresholds")
    build(settings, select="evaluation", variables=WARN_ONLY)
    if tradeoff:  # step 12 is optional (--no-tradeoff); the numbering stays that of `demo --help`
        _step("12. exposure control trade-off over reserve caps (in process, for the report)")
        _tradeoff(settings, seed=seed + 4)
    _step("13. the scorecard")
    report(settings, html_path=None, console=console)
    console.print(
        f"\n[bold green]demo finished[/] in {time.monotonic() - started:.0f} s. "
        f"Warehouse: {settings.warehouse_path}  bundles: {settings.artifacts_dir}  logs: {settings.logs_dir}\n"
        f'Try: streamrec sql "select * from evaluation.scorecard"'
    )


def _tradeoff(settings: Settings, seed: int) -> None:
    from streamrec.lab.exposure_tradeoff import run_curve, write_curve

    caps = [0.0, 0.2, 0.5, 0.7]
    points = run_curve(settings.home, caps, requests=1_200, seed=seed)
    command = f"streamrec demo (caps {caps}, 1200 requests each); full curve: bench/fairness.py"
    out = write_curve(settings.home, points, command, "")
    for p in points:
        equity = "n/a" if p["worst_equity"] is None else f"{p['worst_equity']:.3f}"
        console.print(
            f"cap {p['cap']:.1f}: worst equity {equity}, creators never shown {p['creators_never_shown_share']:.1%}, "
            f"NDCG@10 {p['ndcg_at_10_vs_no_control']:+.1%}, "
            f"true engagement {p['true_engaged_per_page_vs_no_control']:+.1%}"
        )
    console.print(f"curve: {out}")


def _newest_version(settings: Settings) -> str:
    from streamrec.models_ml.registry import list_versions

    rows = list_versions(settings)
    if not rows:
        raise StreamRecError("training registered no version")
    return max(rows, key=lambda r: str(r["created_at"]))["version"]


def _print_offline_metrics(settings: Settings) -> None:
    with connect(settings, read_only=True) as con:
        if not table_exists(con, "evaluation", "offline_metrics"):
            console.print("evaluation.offline_metrics not built")
            return
        result = con.execute(
            "select model_version, policy, user_count, recall_at_500_ratio, hit_at_10_ratio, ndcg_at_10_score "
            "from evaluation.offline_metrics order by model_version, policy"
        )
        names = [d[0] for d in result.description]
        rows = result.fetchall()
    table = Table(*names, title="offline metrics (held-out users, temporal split)")
    for row in rows:
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)


def _serve_and_simulate(settings: Settings, requests: int, seed: int) -> None:
    from streamrec.lab.simulate import simulate

    server = ApiProcess(
        settings.home,
        env={"STREAMREC_HOLDOUT_SHARE": str(DEMO_HOLDOUT_SHARE)},
        log=settings.logs_dir / "server.log",
    ).start()
    try:
        console.print(str(simulate(settings, url=server.url, requests=requests, seed=seed, concurrency=4)))
        metrics = httpx.get(f"{server.url}/metrics", timeout=10.0).text
    finally:
        server.stop()
    logged = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("streamrec_impressions_logged_total")
    )
    console.print(f"server /metrics: {logged:.0f} impressions logged; server log: {server.log}")
    console.print(f"impression and event logs: {settings.logs_dir}")
