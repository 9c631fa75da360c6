"""`streamrec ope --logs obd|ops --target uniform|FILE.csv`: off-policy estimates of a candidate policy from the CLI.

The logs are either the API's own (`ops`: ops.impressions with their propensities, rewards from
ops.events) or an imported Open Bandit dataset (`obd`: raw.ope_logged, `streamrec load obd`). The
candidate (target) policy is either `uniform` (every item the log shows at a position, with equal
probability) or a CSV with the header `request_id,position,item_id,probability`: for each logged slot
(request_id, position), the candidate's probability of showing item_id there; items not listed have
probability 0 and a slot's probabilities sum to at most 1. The target rows go into
raw.ope_target_policy, `streamrec build --select +ope_estimates` estimates it in SQL
(models/evaluation/online/ope_estimates.sql), and the IPS, SNIPS, DR and DM estimates with their 95%
intervals are returned. It works on a warehouse that holds nothing but imported logs.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pyarrow as pa

from streamrec.batch.bandit_import import OPE_LOGGED_TABLE, OPE_TARGET_SCHEMA, write_ope_tables
from streamrec.batch.build import build
from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect, fetchall, table_exists

TARGET_COLUMNS = ("request_id", "position", "item_id", "probability")
ESTIMATORS = ("ips", "snips", "dr", "dm", "logged_mean")


def _logged_rounds_sql(logs: str) -> tuple[str, list[Any]]:
    if logs == "ops":
        return (
            "select cast(request_id as varchar) as request_id, position, item_id from ops.impressions "
            "where propensity is not null",
            [],
        )
    return f"select request_id, position, item_id from {OPE_LOGGED_TABLE} where dataset = ?", []


def _resolve_dataset(settings: Settings, logs: str, dataset: str | None) -> str:
    if logs == "ops":
        return "ops"
    with connect(settings, read_only=True) as con:
        if not table_exists(con, "raw", "ope_logged"):
            raise StreamRecError(f"no {OPE_LOGGED_TABLE} in {settings.warehouse_path}: run `streamrec load obd CSV`")
        names = [r[0] for r in fetchall(con, f"select distinct dataset from {OPE_LOGGED_TABLE} order by 1")]
    if dataset is None:
        if len(names) != 1:
            raise StreamRecError(f"--dataset is needed: {OPE_LOGGED_TABLE} holds {', '.join(names) or 'nothing'}")
        return names[0]
    if dataset not in names:
        raise StreamRecError(f"no dataset {dataset!r} in {OPE_LOGGED_TABLE} (it holds {', '.join(names) or 'nothing'})")
    return dataset


def uniform_targets(settings: Settings, logs: str, dataset: str) -> pa.Table:
    """The uniform policy on every logged slot: each item the log shows at that position, with equal probability."""
    query, _ = _logged_rounds_sql(logs)
    params = [] if logs == "ops" else [dataset]
    with connect(settings, read_only=True) as con:
        if logs == "ops" and not table_exists(con, "ops", "impressions"):
            raise StreamRecError(f"no ops.impressions in {settings.warehouse_path}: run `streamrec ingest` first")
        table = con.sql(
            f"with rounds as ({query}), "
            "items as (select distinct position, item_id from rounds), "
            "sizes as (select position, count(*) as n from items group by position) "
            "select distinct r.request_id, r.position, i.item_id, 1.0 / s.n as target_probability "
            "from rounds r join items i using (position) join sizes s using (position) "
            "order by 1, 2, 3",
            params=params,
        ).to_arrow_table()
    if table.num_rows == 0:
        raise StreamRecError(f"the {logs} logs hold no round with a propensity: nothing to evaluate")
    return table


def read_target_csv(path: Path) -> pa.Table:
    """A target-policy CSV (request_id,position,item_id,probability), validated; errors name row and column."""
    try:
        handle = path.open(newline="")
    except OSError as exc:
        raise StreamRecError(f"--target {path}: {exc.strerror or exc}") from None
    request_ids, positions, items, probabilities = [], [], [], []
    sums: dict[tuple[str, int], float] = {}
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in TARGET_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise StreamRecError(f"{path}: missing column(s) {', '.join(missing)} (header: {','.join(TARGET_COLUMNS)})")
        for row_number, row in enumerate(reader, start=2):
            request = (row["request_id"] or "").strip()
            if not request:
                raise StreamRecError(f"{path}, row {row_number}, column request_id: empty")
            try:
                position = int(row["position"])
                item = int(row["item_id"])
                probability = float(row["probability"])
            except ValueError:
                raise StreamRecError(
                    f"{path}, row {row_number}: position and item_id must be integers, probability a number"
                ) from None
            if not (0.0 <= probability <= 1.0) or math.isnan(probability):
                raise StreamRecError(f"{path}, row {row_number}, column probability: {probability} is not in [0, 1]")
            key = (request, position)
            sums[key] = sums.get(key, 0.0) + probability
            if sums[key] > 1.0 + 1e-6:
                raise StreamRecError(
                    f"{path}, row {row_number}: the probabilities of slot ({request}, {position}) sum to "
                    f"{sums[key]:.6f} > 1"
                )
            request_ids.append(request)
            positions.append(position)
            items.append(item)
            probabilities.append(probability)
    if not request_ids:
        raise StreamRecError(f"{path}: no rows")
    return pa.table(
        {
            "request_id": pa.array(request_ids, pa.string()),
            "position": pa.array(positions, pa.int32()),
            "item_id": pa.array(items, pa.int64()),
            "target_probability": pa.array(probabilities, pa.float64()),
        }
    )


def run_ope(settings: Settings, logs: str, target: str, dataset: str | None = None) -> list[dict[str, Any]]:
    """Write the target policy, build the estimates and return one dict per estimator (IPS, SNIPS, DR, DM, logged)."""
    if logs not in ("obd", "ops"):
        raise StreamRecError(f"--logs {logs!r}: expected obd or ops")
    if not settings.warehouse_path.exists():
        raise StreamRecError(f"no warehouse at {settings.warehouse_path}: run `streamrec init` first")
    name = _resolve_dataset(settings, logs, dataset)
    if target == "uniform":
        policy, rows = "uniform", uniform_targets(settings, logs, name)
    else:
        path = Path(target)
        policy, rows = path.stem, read_target_csv(path)
    n = rows.num_rows
    rows = pa.table(
        {
            "dataset": pa.array([name] * n, pa.string()),
            "target_policy": pa.array([policy] * n, pa.string()),
            "request_id": rows["request_id"].cast(pa.string()),
            "position": rows["position"].cast(pa.int32()),
            "item_id": rows["item_id"].cast(pa.int64()),
            "target_probability": rows["target_probability"],
        },
        schema=OPE_TARGET_SCHEMA,
    )
    write_ope_tables(settings, targets=rows)
    # +ope_estimates: only what the estimates need, so a warehouse holding only imported logs builds too.
    build(settings, select="+ope_estimates", variables={"evaluation_threshold_severity": "warn"})
    with connect(settings, read_only=True) as con:
        result = con.sql(
            "select estimator, estimate, standard_error, ci_low, ci_high, round_count, effective_sample_size, "
            "max_weight from evaluation.ope_estimates where dataset = ? and target_policy = ?",
            params=[name, policy],
        ).fetchall()
    names = ("estimator", "estimate", "standard_error", "ci_low", "ci_high", "rounds", "ess", "max_weight")
    estimates = sorted(
        (dict(zip(names, row, strict=True)) for row in result),
        key=lambda r: ESTIMATORS.index(r["estimator"]) if r["estimator"] in ESTIMATORS else len(ESTIMATORS),
    )
    if not estimates:
        raise StreamRecError(f"no estimate for dataset {name!r} and target {policy!r}: do the slots match the log?")
    for estimate in estimates:
        estimate.update(dataset=name, target_policy=policy)
    return estimates
