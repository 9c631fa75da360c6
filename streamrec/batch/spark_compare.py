"""`streamrec spark compare`: the Spark build's feature tables against the DuckDB warehouse's, row by row.

For features.user_features, features.item_features (keys from the contract) and features.training_examples
(key interaction_id): the same columns in the same order, the same keys, numbers equal within a relative
tolerance (1e-9, with an absolute floor for values near 0), strings, flags and timestamps equal, and nulls in
the same places. The Spark tables are read from their Parquet files in the local Spark warehouse with DuckDB
(no JVM), joined with the published DuckDB tables in one read-only connection. The first difference ends
the comparison with a StreamRecError naming the table, the key and the column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from streamrec.batch.spark_build import spark_table_path
from streamrec.contracts import load_contract
from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect, fetchall, table_exists

SCHEMA = "features"
REL_TOL = 1e-9
ABS_TOL = 1e-12
NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "DECIMAL")


@dataclass(frozen=True)
class TableSpec:
    """A compared table and the columns that identify a row."""

    name: str
    keys: tuple[str, ...]


def compared_tables() -> list[TableSpec]:
    """The feature tables (keys from the contract's entities) and the training table."""
    contract = load_contract()
    tables = [TableSpec(entity.model, tuple(entity.keys)) for entity in contract.entities.values()]
    return [*tables, TableSpec("training_examples", ("interaction_id",))]


def _kind(duckdb_type: str) -> str:
    upper = duckdb_type.upper()
    if upper.startswith(NUMERIC):
        return "number"
    if upper.startswith("TIMESTAMP"):
        return "timestamp"
    if upper == "BOOLEAN":
        return "boolean"
    return "string"


def _describe(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    return [(row[0], row[1]) for row in fetchall(con, f"describe select * from {relation}")]


def _spark_relation(
    con: duckdb.DuckDBPyConnection, settings: Settings, table: str
) -> tuple[str, list[tuple[str, str]]]:
    """A subquery over the Spark table's Parquet, timestamps (UTC instants) as naive UTC like DuckDB's."""
    path = spark_table_path(settings, SCHEMA, table)
    if not any(path.glob("*.parquet")):
        raise StreamRecError(f"no Spark table {SCHEMA}.{table} at {path}: run `streamrec spark build` first")
    files = f"read_parquet('{path}/*.parquet')"
    columns = _describe(con, files)
    select = ", ".join(
        f"make_timestamp(epoch_us({name})) as {name}" if "TIME ZONE" in kind.upper() else name for name, kind in columns
    )
    return f"(select {select} from {files})", columns


def _differs(column: str, kind: str, rel_tol: float, abs_tol: float) -> str:
    s, d = f"s.{column}", f"d.{column}"
    if kind != "number":
        return f"({s} is distinct from {d})"
    s, d = f"cast({s} as double)", f"cast({d} as double)"
    return (
        f"(({s} is null) <> ({d} is null) or ({s} is not null and "
        f"abs({s} - {d}) > greatest({rel_tol} * greatest(abs({s}), abs({d})), {abs_tol})))"
    )


def _key_text(keys: Sequence[str], values: Sequence[Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in zip(keys, values, strict=True))


def compare_table(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    spec: TableSpec,
    rel_tol: float = REL_TOL,
    abs_tol: float = ABS_TOL,
) -> int:
    """Compare one table on both engines; return its row count or raise StreamRecError at the first difference."""
    name = f"{SCHEMA}.{spec.name}"
    if not table_exists(con, SCHEMA, spec.name):
        raise StreamRecError(f"no table {name} in {settings.warehouse_path}: run `streamrec build` first")
    spark, spark_columns = _spark_relation(con, settings, spec.name)
    duck_columns = _describe(con, name)
    if [c for c, _ in spark_columns] != [c for c, _ in duck_columns]:
        only_spark = [c for c, _ in spark_columns if c not in dict(duck_columns)]
        only_duck = [c for c, _ in duck_columns if c not in dict(spark_columns)]
        detail = f"only on Spark: {only_spark}, only on DuckDB: {only_duck}" if only_spark or only_duck else "order"
        raise StreamRecError(f"{name}: Spark and DuckDB columns differ ({detail})")
    kinds = {}
    for (column, spark_type), (_, duck_type) in zip(spark_columns, duck_columns, strict=True):
        if _kind(spark_type) != _kind(duck_type):
            raise StreamRecError(f"{name}.{column}: Spark type {spark_type}, DuckDB type {duck_type}")
        kinds[column] = _kind(duck_type)

    on = " and ".join(f"s.{key} = d.{key}" for key in spec.keys)
    joined = f"{spark} as s full outer join {name} as d on {on}"
    counts = fetchall(con, f"select (select count(*) from {spark}), (select count(*) from {name})")[0]
    first_key = spec.keys[0]
    for side, absent in (("DuckDB", f"d.{first_key}"), ("Spark", f"s.{first_key}")):
        present = "s" if side == "DuckDB" else "d"
        keys = ", ".join(f"{present}.{key}" for key in spec.keys)
        missing = fetchall(con, f"select {keys} from {joined} where {absent} is null order by {keys} limit 1")
        if missing:
            other = "Spark" if side == "DuckDB" else "DuckDB"
            raise StreamRecError(
                f"{name}: row {_key_text(spec.keys, missing[0])} is on {other} but not on {side} "
                f"(Spark {counts[0]:,} rows, DuckDB {counts[1]:,})"
            )
    if counts[0] != counts[1]:  # same key sets, different counts: a key repeats on one side
        raise StreamRecError(f"{name}: Spark has {counts[0]:,} rows, DuckDB {counts[1]:,}, over the same keys")

    values = [c for c, _ in duck_columns if c not in spec.keys]
    tallies = ", ".join(f"count(*) filter (where {_differs(c, kinds[c], rel_tol, abs_tol)}) as {c}" for c in values)
    differing = dict(zip(values, fetchall(con, f"select {tallies} from {joined}")[0], strict=True))
    bad = [c for c in values if differing[c]]
    if bad:
        column = bad[0]
        keys = ", ".join(f"s.{key}" for key in spec.keys)
        row = fetchall(
            con,
            f"select {keys}, s.{column}, d.{column} from {joined} "
            f"where {_differs(column, kinds[column], rel_tol, abs_tol)} order by {keys} limit 1",
        )[0]
        key_values, spark_value, duck_value = row[: len(spec.keys)], row[-2], row[-1]
        also = f"; also differ: {', '.join(bad[1:])}" if len(bad) > 1 else ""
        raise StreamRecError(
            f"{name}: column {column} differs at {_key_text(spec.keys, key_values)}: Spark {spark_value!r}, "
            f"DuckDB {duck_value!r} ({differing[column]:,} of {counts[0]:,} rows differ{also})"
        )
    return counts[0]


def compare(settings: Settings, rel_tol: float = REL_TOL, abs_tol: float = ABS_TOL) -> str:
    """Compare every feature table of the Spark build with the DuckDB warehouse; return a one-line summary."""
    counts = []
    with connect(settings, read_only=True) as con:
        for spec in compared_tables():
            counts.append(f"{SCHEMA}.{spec.name} {compare_table(con, settings, spec, rel_tol, abs_tol):,} rows")
    return f"Spark and DuckDB agree (numbers within {rel_tol:g} relative): " + ", ".join(counts)
