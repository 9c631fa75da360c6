"""`streamrec`: the one front door to every step (init, generate, load, build, reference, train, ...).

Each command is a thin wrapper: the work lives in the module it imports, so the CLI stays a list
of verbs. Failures the user can act on (StreamRecError, ContractViolation) end as one line on
stderr and exit code 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from streamrec.contracts import ContractViolation
from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings

app = typer.Typer(
    help="StreamRec: SQL feature warehouse, co-versioned models, serving and evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"streamrec {version('streamrec')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, metavar="", help="Print the version and exit."),
    ] = None,
) -> None:
    """StreamRec: SQL feature warehouse, co-versioned models, serving and evaluation."""


load_app = typer.Typer(help="Load an external dataset into the raw schema.", no_args_is_help=True)
reference_app = typer.Typer(help="Reference feature distributions for the PSI test.", no_args_is_help=True)
contracts_app = typer.Typer(help="Feature contracts: render and check the dbt YAML.", no_args_is_help=True)
app.add_typer(load_app, name="load")
app.add_typer(reference_app, name="reference")
app.add_typer(contracts_app, name="contracts")
canary_app = typer.Typer(help="Two-phase canary of a candidate bundle, via the running API's admin endpoints.")
app.add_typer(canary_app, name="canary")
spark_app = typer.Typer(
    help="The same features on Spark (dbt-spark): export raw, build, compare with DuckDB.", no_args_is_help=True
)
app.add_typer(spark_app, name="spark")

# Piped output (make demo in CI, logs) gets a width that fits the scorecard instead of rich's 80 columns.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 140)


def _settings() -> Settings:
    return Settings.from_env().ensure()


@app.command()
def init() -> None:
    """Create STREAMREC_HOME and bring the operational tables to the newest migration (alembic upgrade head)."""
    from streamrec.batch.migrate import init_db

    settings = _settings()
    revision = init_db(settings)
    console.print(f"warehouse {settings.warehouse_path} at migration {revision}")


@app.command()
def generate(
    users: Annotated[int, typer.Option(min=1, help="Number of users.")] = 2_000,
    items: Annotated[int, typer.Option(min=1, help="Number of items.")] = 1_000,
    days: Annotated[int, typer.Option(min=8, help="Days of history to generate.")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same data.")] = 7,
    interactions: Annotated[
        int | None, typer.Option(min=1, help="Target interaction count (default: about 40 per user).")
    ] = None,
) -> None:
    """Write synthetic StreamRec data (and its hidden ground truth) into the raw schema."""
    from streamrec.lab.generate import generate as run

    summary = run(_settings(), users=users, items=items, days=days, seed=seed, interactions=interactions)
    console.print(summary)


@load_app.command("movielens")
def load_movielens(
    directory: Annotated[Path, typer.Argument(help="Folder with ml-100k.inter/.item/.user.")],
) -> None:
    """Load MovieLens-100K (RecBole atomic files) into the raw schema."""
    from streamrec.batch.movielens import load_movielens as run

    console.print(run(_settings(), directory))


@load_app.command("obd")
def load_obd(
    csv: Annotated[Path, typer.Argument(help="Open Bandit Dataset CSV (timestamp, item_id, position, click, ...).")],
    dataset: Annotated[
        str | None, typer.Option(help="Dataset name in raw.ope_logged (default: obd_<folder>_<file stem>).")
    ] = None,
) -> None:
    """Load logged bandit feedback (Open Bandit Dataset layout) into raw.ope_logged for off-policy evaluation."""
    from streamrec.batch.bandit_import import load_obd as run

    console.print(run(_settings(), csv, dataset=dataset))


@load_app.command("events")
def load_events(
    locations: Annotated[list[str], typer.Argument(help="Parquet/CSV files, directories or globs.")],
    table: Annotated[
        str | None, typer.Option(help="Raw table of every file (default: from each file's name, e.g. users_*.csv).")
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(
            help="YAML renaming columns and converting units: `watch_ms: {column: watch_seconds, scale: 0.001}`."
        ),
    ] = None,
    late_days: Annotated[
        float, typer.Option(min=0, help="Accept new events up to this many days older than the newest stored one.")
    ] = 7.0,
) -> None:
    """Append a team's own users, creators, items, sessions and interactions (Parquet or CSV) to the raw schema."""
    from streamrec.batch.event_load import load_events as run

    console.print(str(run(_settings(), locations, table=table, mapping_path=mapping, late_days=late_days)))


@app.command()
def build(
    select: Annotated[str | None, typer.Option(help="dbt --select expression.")] = None,
    as_of: Annotated[str | None, typer.Option(help="Feature timestamp (default: end of the data).")] = None,
    warn_thresholds: Annotated[
        bool, typer.Option("--warn-thresholds", help="Report failing evaluation thresholds as warnings, not failures.")
    ] = False,
    freshness: Annotated[
        bool, typer.Option("--freshness/--no-freshness", help="Then run `dbt source freshness` and report it.")
    ] = True,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Also fail on INCONCLUSIVE scorecard rows (interval straddles the threshold)."),
    ] = False,
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="Rebuild incremental models from all of raw, not just the lookback.")
    ] = False,
) -> None:
    """Run `dbt build` (models and tests) into a copy of the warehouse and publish it only if it passes."""
    from streamrec.batch.build import build as run

    variables: dict[str, object] = {"evaluation_threshold_severity": "warn"} if warn_thresholds else {}
    if strict:
        variables["evaluation_strict"] = True
    settings = _settings()
    run(settings, select=select, as_of=as_of, variables=variables or None, full_refresh=full_refresh)
    if freshness:
        from streamrec.batch.freshness import report_freshness

        report_freshness(settings)  # stale inputs are reported, never a failure of the build


@reference_app.command("capture")
def reference_capture(
    tag: Annotated[str, typer.Option(help="Version tag stored with the reference.")] = "baseline",
) -> None:
    """Store quantile bins, shares and means of every numeric feature as the PSI reference."""
    from streamrec.batch.reference import capture

    console.print(capture(_settings(), tag=tag))


@contracts_app.command("render")
def contracts_render() -> None:
    """Write dbt_project/models/features/_features__models.yml from streamrec.contracts/features.yml."""
    from streamrec.contracts.render import write_dbt_yaml

    console.print(f"wrote {write_dbt_yaml()}")


@contracts_app.command("check")
def contracts_check() -> None:
    """Fail if the dbt YAML is not what contracts/features.yml renders to."""
    from streamrec.contracts.render import check_dbt_yaml

    check_dbt_yaml()
    console.print("dbt YAML matches contracts/features.yml")


@app.command()
def ingest() -> None:
    """Load the API's append-only impression and event logs into ops.impressions / ops.events (idempotent)."""
    from streamrec.batch.ingest import ingest_logs

    console.print(ingest_logs(_settings()))


@app.command()
def materialize(
    as_of: Annotated[
        str | None, typer.Option(help="Feature as_of to snapshot (ISO date/time; default: the latest).")
    ] = None,
    url: Annotated[
        str | None,
        typer.Option("--notify", help="Then ask the API at this URL to swap it in (POST /v1/admin/snapshot)."),
    ] = None,
) -> None:
    """Write the online feature snapshot (users' latest features) from the warehouse, register it, make it CURRENT."""
    from datetime import datetime

    from streamrec.batch.materialize import materialize as run

    when = None
    if as_of is not None:
        try:
            when = datetime.fromisoformat(as_of)
        except ValueError:
            raise StreamRecError(f"--as-of {as_of!r} is not an ISO date or date-time") from None
    done = run(_settings(), as_of=when)
    console.print(
        f"snapshot {done.snapshot_id}: {done.n_users} users at {done.as_of.isoformat()}, "
        f"{done.size_bytes / 1e6:.1f} MB in {done.seconds:.1f} s{'' if done.created else ' (already written)'}"
    )
    if url is not None:
        console.print(_admin("POST", "/v1/admin/snapshot", url))


@app.command()
def train(
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs for the two-tower model.")] = 3,
    seed: Annotated[int, typer.Option(help="Random seed (training is deterministic given the seed).")] = 7,
    version: Annotated[str | None, typer.Option(help="Version tag (default: generated from time).")] = None,
    tune: Annotated[
        bool, typer.Option("--tune", help="Search the hyperparameters on a validation window first (Optuna).")
    ] = False,
    tune_seconds: Annotated[
        float, typer.Option(min=1, help="Time budget of --tune in seconds (at least one trial runs).")
    ] = 600.0,
    refit: Annotated[
        bool, typer.Option("--refit/--no-refit", help="Refit the served models on all history after evaluation.")
    ] = True,
    nproc: Annotated[
        int,
        typer.Option(
            min=1, max=64, help="Two-tower training processes (torch.distributed, gloo); each adds a batch per step."
        ),
    ] = 1,
    threads: Annotated[
        int, typer.Option(min=1, max=64, help="Torch intra-op threads per training process (more on an idle machine).")
    ] = 1,
) -> None:
    """Train retrieval model, FAISS index and ranker, write a co-versioned bundle and register it."""
    from streamrec.models_ml.train import TrainConfig
    from streamrec.models_ml.train import train as run

    console.print(
        run(
            _settings(),
            epochs=epochs,
            seed=seed,
            version=version,
            refit=refit,
            train_cfg=TrainConfig(nproc=nproc, threads=threads),
            tune_seconds=tune_seconds if tune else None,
        )
    )


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="Version tag to serve.")],
    reason: Annotated[str, typer.Option(help="Why (recorded with the promotion).")] = "manual promotion",
    by: Annotated[str | None, typer.Option(help="Who (default: $USER).")] = None,
) -> None:
    """Make VERSION the serving version in one transaction (verifies the bundle first)."""
    from streamrec.models_ml.registry import promote as run

    console.print(run(_settings(), version=version, by=by, reason=reason))


@app.command()
def rollback(
    reason: Annotated[str, typer.Option(help="Why (recorded with the rollback).")] = "manual rollback",
    by: Annotated[str | None, typer.Option(help="Who (default: $USER).")] = None,
) -> None:
    """Return to the version that served before the current one."""
    from streamrec.models_ml.registry import rollback as run

    console.print(run(_settings(), by=by, reason=reason))


@app.command()
def config() -> None:
    """Print the effective settings and where each came from (environment, streamrec.toml or default)."""
    from rich.table import Table

    from streamrec.core.settings import SECRET_FIELDS, env_name, resolve_settings

    settings, sources = resolve_settings()
    table = Table("setting", "value", "source", "variable")
    for field, source in sources.items():
        value = getattr(settings, field)
        shown = value.home if field == "home" else value
        if field in SECRET_FIELDS and value is not None:
            shown = "***"  # never print a secret
        table.add_row(field, str(shown), source, env_name(field))
    console.print(table)


versions_app = typer.Typer(help="Registered bundles: list them (with their offline metrics) or compare two.")
app.add_typer(versions_app, name="versions")


@versions_app.callback(invoke_without_command=True)
def versions(
    ctx: typer.Context,
    metrics: Annotated[
        bool, typer.Option("--metrics", help="Add the offline metrics stored at registration (metrics_json).")
    ] = False,
) -> None:
    """List registered bundles and which one serves (`versions compare A B` compares two)."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from streamrec.batch.version_compare import scalar_metrics
    from streamrec.models_ml.registry import list_versions

    rows = list_versions(_settings())
    names = sorted({name for row in rows for name in scalar_metrics(row["metrics"])}) if metrics else []
    table = Table(
        "version", "created_at", "serving", "index", "recall@500 (index)", "contract", "hyperparameters", *names
    )
    for row in rows:
        values = scalar_metrics(row["metrics"])
        table.add_row(
            row["version"],
            str(row["created_at"]),
            "yes" if row["serving"] else "",
            row["index_kind"],
            f"{row['index_recall_at_500']:.3f}",
            row["contract_sha256"][:12],
            _hyperparameters(row["metrics"]),
            *(f"{values[n]:.4f}" if n in values else "—" for n in names),
        )
    console.print(table)


def _hyperparameters(metrics: dict) -> str:
    """`tuned (N trials): name=value ...` or `defaults`, then what was chosen on validation, for the versions table."""
    tuning = metrics.get("tuning") or {}
    if tuning.get("tuned"):
        params = " ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(tuning["params"].items())
        )
        text = f"tuned ({tuning.get('trials')} trials): {params}"
    else:
        text = "defaults" if "hyperparameters" in metrics else "—"
    validation = metrics.get("validation") or {}
    l2 = (validation.get("ease_l2") or {}).get("chosen")
    if l2 is not None:
        text += f"; ease_l2={l2:g}" + (" (validated)" if (validation.get("ease_l2") or {}).get("grid") else "")
    blend = metrics.get("ranker_blend")
    if "blend" in validation:
        text += "; blend " + (" ".join(f"{k}={v:.3g}" for k, v in sorted(blend.items())) if blend else "none")
    return text


@versions_app.command("compare")
def versions_compare(
    a: Annotated[str, typer.Argument(help="First version tag.")],
    b: Annotated[str, typer.Argument(help="Second version tag.")],
    only_differences: Annotated[bool, typer.Option("--diff", help="Show only the fields that differ.")] = False,
) -> None:
    """Offline metrics, sources, hyperparameters and contract hash of two versions, side by side."""
    from rich.table import Table

    from streamrec.batch.version_compare import compare, text

    table = Table("section", "field", a, b, "")
    for row in compare(_settings(), a, b):
        if only_differences and not row.differs:
            continue
        table.add_row(row.section, row.name, text(row.a), text(row.b), "≠" if row.differs else "")
    console.print(table)


@app.command()
def ope(
    logs: Annotated[str, typer.Option(help="obd (raw.ope_logged, `streamrec load obd`) or ops (the API's log).")],
    target: Annotated[
        str, typer.Option(help="uniform, or a CSV request_id,position,item_id,probability (docs/evaluation.md).")
    ],
    dataset: Annotated[str | None, typer.Option(help="Which imported dataset (needed when there are several).")] = None,
) -> None:
    """Off-policy estimates (IPS, SNIPS, DR, DM, with 95% intervals) of a target policy on logged feedback."""
    from rich.table import Table

    from streamrec.batch.ope_run import run_ope

    estimates = run_ope(_settings(), logs=logs, target=target, dataset=dataset)
    first = estimates[0]
    table = Table("estimator", "estimate", "95% interval", "std error", "rounds", "effective n", "max weight")
    for row in estimates:
        interval = "" if row["ci_low"] is None else f"[{row['ci_low']:.4f}, {row['ci_high']:.4f}]"
        table.add_row(
            row["estimator"],
            f"{row['estimate']:.4f}",
            interval,
            "" if row["standard_error"] is None else f"{row['standard_error']:.4f}",
            str(row["rounds"]),
            "" if row["ess"] is None else f"{row['ess']:.0f}",
            "" if row["max_weight"] is None else f"{row['max_weight']:.2f}",
        )
    console.print(f"target {first['target_policy']!r} on dataset {first['dataset']!r} (reward per slot):")
    console.print(table)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="SQL to run read-only against the warehouse.")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format", "-f", help="table | vertical | csv | json | markdown (table turns vertical if too wide)."
        ),
    ] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the result to this file.")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Bind value for ? / $1 (repeat), or NAME=VALUE for $NAME.")
    ] = None,
) -> None:
    """Run an ad-hoc read-only query against the published warehouse and print the rows."""
    from streamrec.cli.sql_output import FORMATS, emit, parse_params
    from streamrec.core.warehouse import read_only_query

    if fmt not in FORMATS:
        raise StreamRecError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    params = parse_params(param or [])
    # Read-only at the engine level (statement types, read_only, no external access): core.warehouse.
    names, rows = read_only_query(_settings(), query, params or None)
    emit(names, rows, fmt, output, console)


@app.command()
def demo(
    users: Annotated[int, typer.Option(min=1)] = 2_000,
    items: Annotated[int, typer.Option(min=1)] = 1_000,
    interactions_per_user: Annotated[
        int | None, typer.Option(min=1, help="History per user (default: the demo's, docs/data.md)")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic world and training (simulator: seed + 4).")] = 7,
    tradeoff: Annotated[bool, typer.Option(help="Measure a short exposure-control trade-off curve.")] = True,
) -> None:
    """The whole loop on a demo-sized dataset, in 13 steps (streamrec/lab/demo.py):

    \b
    1. init: alembic upgrade head
    2. generate synthetic StreamRec data
    3. dbt build: staging, contract-enforced features, training table, tests
    4. reference capture: distributions the PSI test compares against
    5. dbt build again, PSI test armed
    6. train: two-tower + FAISS + ranker, one co-versioned bundle
    7. promote the new version
    8. offline evaluation in SQL (dbt models/evaluation)
    9. serve over HTTP and drive it with simulated requests
    10. ingest the impression and event logs into the warehouse
    11. evaluation in SQL: causal effect, off-policy, fairness, skew, thresholds
    12. exposure control trade-off over reserve caps (skipped with --no-tradeoff)
    13. the scorecard
    """
    from streamrec.lab.demo import DEMO_INTERACTIONS_PER_USER, run_demo

    per_user = DEMO_INTERACTIONS_PER_USER if interactions_per_user is None else interactions_per_user
    run_demo(_settings(), users=users, items=items, interactions_per_user=per_user, seed=seed, tradeoff=tradeoff)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Server processes on the port (shared exposure and canary state).")
    ] = 1,
) -> None:
    """Serve recommendations over HTTP (Litestar + uvicorn); configuration from STREAMREC_* variables (docs/api.md)."""
    from streamrec.api.config import ApiSettings
    from streamrec.cli.serve import serve as run

    _settings()
    run(ApiSettings.from_env(), host=host, port=port, workers=workers)


def _admin(method: str, path: str, url: str, json: dict | None = None) -> dict:
    """Call the API's admin endpoint with STREAMREC_ADMIN_TOKEN; HTTP errors become one-line StreamRecErrors."""
    import httpx

    from streamrec.core.settings import load_settings

    token = load_settings().admin_token
    if not token:
        raise StreamRecError("STREAMREC_ADMIN_TOKEN is not set: the admin API needs the server's bearer token")
    try:
        response = httpx.request(
            method, url.rstrip("/") + path, json=json, headers={"Authorization": f"Bearer {token}"}, timeout=120
        )
    except httpx.HTTPError as exc:
        raise StreamRecError(f"cannot reach the API at {url}: {exc}") from exc
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise StreamRecError(f"{method} {path} failed with {response.status_code}: {detail}")
    return response.json()


ApiUrl = Annotated[str, typer.Option("--url", envvar="STREAMREC_API_URL", help="Base URL of the running API.")]


@canary_app.command("start")
def canary_start(
    version: Annotated[str, typer.Argument(help="Candidate bundle version (under artifacts/).")],
    phase: Annotated[int, typer.Option(min=1, max=2, help="Phase to start in.")] = 1,
    share: Annotated[float | None, typer.Option(min=0, max=1, help="Share of users (default by phase).")] = None,
    url: ApiUrl = "http://127.0.0.1:8000",
) -> None:
    """Load VERSION in the API next to the serving bundle and route a share of users to it."""
    console.print(
        _admin(
            "POST",
            "/v1/admin/canary",
            url,
            {"action": "start", "candidate_version": version, "phase": phase, "share": share},
        )
    )


@canary_app.command("status")
def canary_status(url: ApiUrl = "http://127.0.0.1:8000") -> None:
    """Show the canary's state in the API."""
    console.print(_admin("GET", "/v1/admin/canary", url))


@canary_app.command("hold")
def canary_hold(url: ApiUrl = "http://127.0.0.1:8000") -> None:
    """Pause the canary: the candidate stays loaded but gets no traffic."""
    console.print(_admin("POST", "/v1/admin/canary", url, {"action": "hold"}))


@canary_app.command("rollback")
def canary_rollback(url: ApiUrl = "http://127.0.0.1:8000") -> None:
    """Drop the candidate: all traffic back to the serving bundle."""
    console.print(_admin("POST", "/v1/admin/canary", url, {"action": "rollback"}))


@canary_app.command("advance")
def canary_advance(
    url: ApiUrl = "http://127.0.0.1:8000",
    force: Annotated[bool, typer.Option(help="Advance even if the logged metrics say no.")] = False,
    by: Annotated[str | None, typer.Option(help="Who (recorded with the promotion after phase 2).")] = None,
    min_impressions: Annotated[int, typer.Option(min=1, help="Impressions each arm needs in the phase.")] = 500,
    p99_factor: Annotated[float, typer.Option(min=1, help="Allowed candidate/control p99 latency ratio.")] = 1.25,
) -> None:
    """Judge the phase from the ingested logs (SQL); if it passes, go to phase 2, or after phase 2 promote."""
    from streamrec.batch.canary_decision import Thresholds, decide

    settings = _settings()
    status = _admin("GET", "/v1/admin/canary", url)
    if status["state"] == "idle":
        raise StreamRecError("no canary is running: `streamrec canary start VERSION` first")
    thresholds = Thresholds(min_impressions=min_impressions, p99_factor=p99_factor)
    decision = decide(settings, status["phase"], status["control_version"], status["candidate_version"], thresholds)
    for arm in (decision.control, decision.candidate):
        if arm is not None:
            console.print(arm)
    if not decision.advance and not force:
        raise StreamRecError(f"not advancing phase {status['phase']}: " + "; ".join(decision.reasons))
    if status["phase"] == 2:
        from streamrec.models_ml.registry import promote

        console.print(promote(settings, version=status["candidate_version"], by=by, reason="canary passed phase 2"))
    console.print(_admin("POST", "/v1/admin/canary", url, {"action": "advance"}))


@app.command()
def simulate(
    requests: Annotated[int, typer.Option(min=1, max=1_000_000, help="Recommendation requests to send.")] = 500,
    url: ApiUrl = "http://127.0.0.1:8000",
    seed: Annotated[int, typer.Option(help="Random seed for users and their responses.")] = 11,
    concurrency: Annotated[int, typer.Option(min=1, max=32, help="Concurrent HTTP clients.")] = 4,
) -> None:
    """Drive the running API with synthetic users answering from the ground truth; store the true ATE."""
    from streamrec.lab.simulate import simulate as run

    console.print(str(run(_settings(), url=url, requests=requests, seed=seed, concurrency=concurrency)))


@app.command()
def daily(
    drop: Annotated[
        Path, typer.Option(help="Drop directory: its Parquet/CSV files are loaded (already loaded ones skipped).")
    ],
    mapping: Annotated[
        Path | None, typer.Option(help="Mapping YAML for the files (see `streamrec load events`).")
    ] = None,
    late_days: Annotated[
        float, typer.Option(min=0, help="Accept new events up to this many days older than the newest stored one.")
    ] = 7.0,
    capture_reference: Annotated[
        str | None, typer.Option(help="Also capture a new PSI reference under this tag (default: keep the old one).")
    ] = None,
) -> None:
    """The daily cycle: load the drop directory, build features, ingest logs, build evaluation, report.

    Safe to rerun after a crash at any step. Exit 0: all done; 1: a step failed (named); 3: scorecard failed.
    """
    from streamrec.batch.daily import daily as run

    result = run(
        _settings(), drop, late_days=late_days, mapping=mapping, capture_reference=capture_reference, console=console
    )
    if result.scorecard_failure:
        typer.echo(f"error: {result.scorecard_failure}", err=True)
        raise typer.Exit(result.exit_code)


@app.command()
def report(
    html: Annotated[
        Path | None, typer.Option(help="Where to write the HTML report (default STREAMREC_HOME/reports/report.html).")
    ] = None,
) -> None:
    """Print the evaluation scorecard and write a self-contained HTML report with plots."""
    from streamrec.batch.report import report as run

    run(_settings(), html_path=html, console=console)


@spark_app.command("export")
def spark_export() -> None:
    """Write the raw tables and the PSI reference as Parquet under STREAMREC_HOME/spark for the Spark build."""
    from streamrec.batch.spark_export import export

    console.print(export(_settings()))


@spark_app.command("build")
def spark_build(
    as_of: Annotated[
        str | None, typer.Option(help="Feature timestamp (default: the DuckDB build's, recorded by the export).")
    ] = None,
    select: Annotated[str | None, typer.Option(help="dbt --select expression.")] = None,
) -> None:
    """Run `dbt build --target spark` (features, training and their tests) on the exported Parquet."""
    from streamrec.batch.spark_build import spark_build as run

    console.print(run(_settings(), as_of=as_of, select=select))


@spark_app.command("compare")
def spark_compare() -> None:
    """Fail unless the Spark feature tables equal the DuckDB ones (keys, nulls, numbers within 1e-9 relative)."""
    from streamrec.batch.spark_compare import compare

    console.print(compare(_settings()))


def main() -> None:
    """Console-script entry point: user-facing failures become one line on stderr and exit 1."""
    try:
        from streamrec.core.logging_setup import configure_logging

        configure_logging()
        app()
    except (StreamRecError, ContractViolation) as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
