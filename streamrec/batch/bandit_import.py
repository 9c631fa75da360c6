"""`streamrec load obd CSV`: import logged bandit feedback in the Open Bandit Dataset layout into raw.ope_logged.

Open Bandit Dataset (Saito et al., https://github.com/st-tech/zr-obp, `obd/{random,bts}/{all,men,women}.csv`)
files are comma-separated with a header; pandas wrote them with an unnamed leading index column. The
columns used here are `timestamp, item_id, position, click, propensity_score`; the others
(`user_feature_0..3`, `user-item_affinity_0..`) are context the SQL estimators do not need and are
ignored. Each CSV row is one bandit round: the logging policy put `item_id` in slot `position` (1, 2
or 3: left, centre, right) with probability `propensity_score`, and `click` is the reward.

Rows land in raw.ope_logged (schema `raw`, not `ops`: ops is alembic's, and these are imported data)
under a dataset name, replacing an earlier import of the same name in one transaction. The whole file
is validated first: a missing column, a value of the wrong type or a propensity outside (0, 1] is
refused with the file, row and column, and nothing is written. The candidate policies to evaluate go
into raw.ope_target_policy (see docs/evaluation.md); `dbt build --select evaluation` then estimates
their value (models/evaluation/online/ope_estimates.sql).
"""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect, transaction

OBD_COLUMNS = ("timestamp", "item_id", "position", "click", "propensity_score")

OPE_LOGGED_TABLE = "raw.ope_logged"
OPE_TARGET_TABLE = "raw.ope_target_policy"
OPE_LOGGED_DDL = f"""
create table if not exists {OPE_LOGGED_TABLE} (
    dataset varchar not null,
    request_id varchar not null,
    position integer not null,
    item_id bigint not null,
    propensity double not null,
    reward double not null,
    logged_at timestamp,
    primary key (dataset, request_id, position)
)
"""
OPE_TARGET_DDL = f"""
create table if not exists {OPE_TARGET_TABLE} (
    dataset varchar not null,
    target_policy varchar not null,
    request_id varchar not null,
    position integer not null,
    item_id bigint not null,
    target_probability double not null,
    primary key (dataset, target_policy, request_id, position, item_id)
)
"""
OPE_LOGGED_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("request_id", pa.string()),
        ("position", pa.int32()),
        ("item_id", pa.int64()),
        ("propensity", pa.float64()),
        ("reward", pa.float64()),
        ("logged_at", pa.timestamp("us")),
    ]
)
OPE_TARGET_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("target_policy", pa.string()),
        ("request_id", pa.string()),
        ("position", pa.int32()),
        ("item_id", pa.int64()),
        ("target_probability", pa.float64()),
    ]
)


def default_dataset_name(path: Path) -> str:
    """`obd_random_all` for `.../random/all.csv`: the behaviour policy folder and campaign, as OBD lays them out."""
    parent = path.resolve().parent.name
    return f"obd_{parent}_{path.stem}" if parent else f"obd_{path.stem}"


def read_obd_csv(path: Path, dataset: str) -> pa.Table:
    """Parse and validate an OBD-layout CSV into raw.ope_logged rows; raise StreamRecError naming row and column.

    Rows are numbered as a spreadsheet would (the header is row 1). `request_id` is `<dataset>-<row>`:
    every OBD row is its own round, so the row number is its key.
    """
    if not path.is_file():
        raise StreamRecError(f"{path}: no such file")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or not any(name.strip() for name in header):
            raise StreamRecError(f"{path}: empty file, expected a header with {', '.join(OBD_COLUMNS)}")
        names = [name.strip() for name in header]
        missing = [name for name in OBD_COLUMNS if name not in names]
        if missing:
            raise StreamRecError(
                f"{path} row 1: missing column(s) {', '.join(missing)} "
                f"(an Open Bandit Dataset file has {', '.join(OBD_COLUMNS)}, ...); nothing was loaded"
            )
        index = {name: names.index(name) for name in OBD_COLUMNS}
        columns: dict[str, list] = {field.name: [] for field in OPE_LOGGED_SCHEMA}
        for row_number, fields in enumerate(reader, start=2):
            if not fields or all(not f.strip() for f in fields):
                continue  # a blank line (e.g. a trailing newline) is not a round
            if len(fields) != len(names):
                raise StreamRecError(
                    f"{path} row {row_number}: {len(fields)} fields, the header has {len(names)}; nothing was loaded"
                )
            values = {name: fields[position].strip() for name, position in index.items()}
            columns["dataset"].append(dataset)
            columns["request_id"].append(f"{dataset}-{row_number}")
            columns["logged_at"].append(_timestamp(path, row_number, values["timestamp"]))
            columns["item_id"].append(_integer(path, row_number, "item_id", values["item_id"], minimum=0))
            columns["position"].append(_integer(path, row_number, "position", values["position"], minimum=1))
            columns["reward"].append(float(_integer(path, row_number, "click", values["click"], minimum=0, maximum=1)))
            columns["propensity"].append(_propensity(path, row_number, values["propensity_score"]))
    if not columns["dataset"]:
        raise StreamRecError(f"{path}: no data rows after the header; nothing was loaded")
    return pa.table(columns, schema=OPE_LOGGED_SCHEMA)


def _where(path: Path, row: int, column: str, value: str) -> str:
    return f"{path} row {row}, column {column!r}: {value!r}"


def _integer(path: Path, row: int, column: str, value: str, minimum: int, maximum: int | None = None) -> int:
    try:
        number = float(value)  # "3" and "3.0" (pandas writes ints of a float column that way) are both 3
    except ValueError:
        raise StreamRecError(f"{_where(path, row, column, value)} is not an integer; nothing was loaded") from None
    if not math.isfinite(number) or number != int(number):
        raise StreamRecError(f"{_where(path, row, column, value)} is not an integer; nothing was loaded")
    if number < minimum or (maximum is not None and number > maximum):
        allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise StreamRecError(f"{_where(path, row, column, value)} must be {allowed}; nothing was loaded")
    return int(number)


def _propensity(path: Path, row: int, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise StreamRecError(
            f"{_where(path, row, 'propensity_score', value)} is not a number; nothing was loaded"
        ) from None
    if not (0.0 < number <= 1.0):  # also refuses nan
        raise StreamRecError(
            f"{_where(path, row, 'propensity_score', value)} is outside (0, 1]: a logging propensity must be "
            "a positive probability; nothing was loaded"
        )
    return number


def _timestamp(path: Path, row: int, value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise StreamRecError(
            f"{_where(path, row, 'timestamp', value)} is not an ISO timestamp; nothing was loaded"
        ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def write_ope_tables(settings: Settings, logged: pa.Table | None = None, targets: pa.Table | None = None) -> None:
    """Replace the given datasets' rows of raw.ope_logged / raw.ope_target_policy in one transaction.

    Every dataset present in `logged` (and every (dataset, target_policy) in `targets`) is deleted first,
    so importing the same dataset twice replaces it instead of duplicating it.
    """
    with connect(settings, write_raw=True) as con, transaction(con):
        con.execute(OPE_LOGGED_DDL)
        con.execute(OPE_TARGET_DDL)
        if logged is not None:
            con.register("ope_logged_new", logged.cast(OPE_LOGGED_SCHEMA))
            con.execute(
                f"delete from {OPE_LOGGED_TABLE} where dataset in (select distinct dataset from ope_logged_new)"
            )
            con.execute(f"insert into {OPE_LOGGED_TABLE} select * from ope_logged_new")
            con.unregister("ope_logged_new")
        if targets is not None:
            con.register("ope_target_new", targets.cast(OPE_TARGET_SCHEMA))
            con.execute(
                f"delete from {OPE_TARGET_TABLE} as t where exists (select 1 from ope_target_new as n "
                "where n.dataset = t.dataset and n.target_policy = t.target_policy)"
            )
            con.execute(f"insert into {OPE_TARGET_TABLE} select * from ope_target_new")
            con.unregister("ope_target_new")


def load_obd(settings: Settings, path: Path, dataset: str | None = None) -> str:
    """Validate an Open Bandit Dataset CSV and load it into raw.ope_logged as `dataset`; return a summary."""
    path = Path(path)
    name = (dataset or default_dataset_name(path)).strip()
    if not name:
        raise StreamRecError("--dataset must not be empty")
    if not settings.warehouse_path.exists():
        raise StreamRecError(f"no warehouse at {settings.warehouse_path}: run `streamrec init` first")
    table = read_obd_csv(path, name)
    write_ope_tables(settings, logged=table)
    rewards = table.column("reward").to_pylist()
    return (
        f"loaded {table.num_rows:,} rounds of {path} into {OPE_LOGGED_TABLE} as dataset {name!r} "
        f"(logged click rate {sum(rewards) / len(rewards):.4f}); estimate a candidate policy with "
        f"`streamrec ope --logs obd --dataset {name} --target uniform` (or --target FILE.csv)"
    )
