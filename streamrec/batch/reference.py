"""`streamrec reference capture`: store the distribution of every numeric feature for the PSI test.

Each numeric contract feature of the latest as_of snapshot is cut into (at most) 10 quantile bins;
outer edges are open (null) and duplicate edges are merged, so features with few distinct values get
fewer bins. Bins are [lower_edge, upper_edge), exactly as the dbt test `streamrec_psi` assigns
current values. Nulls are left out. One tag is replaced in one transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from streamrec.contracts import load_contract
from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect, scalar, table_exists, transaction

N_BINS = 10
TABLE = "reference.feature_distributions"
CREATE_TABLE = f"""
create table if not exists {TABLE} (
    tag varchar not null,
    feature_name varchar not null,
    bin_index integer not null,
    lower_edge double,
    upper_edge double,
    share double not null,
    mean_value double,
    row_count bigint not null,
    captured_at timestamp not null,
    snapshot_as_of timestamp,
    primary key (tag, feature_name, bin_index)
)
"""
# References captured before the column existed get it (null: their snapshot day was not recorded).
ADD_SNAPSHOT_AS_OF = f"alter table {TABLE} add column if not exists snapshot_as_of timestamp"


def quantile_bins(
    values: np.ndarray, n_bins: int = N_BINS
) -> list[tuple[float | None, float | None, float, float | None, int]]:
    """(lower_edge, upper_edge, share, mean_value, row_count) per bin of the non-null `values`.

    Inner edges are the 1/n .. (n-1)/n quantiles (observed values) with duplicates merged; the first bin has no lower
    edge and the last no upper edge. `mean_value` is the mean of the bin's values (None if empty).
    """
    values = values[~np.isnan(values)]
    if values.size == 0:
        return []
    # "higher": edges are observed values, so a feature with few distinct values gets clean bins
    edges = np.unique(np.quantile(values, np.arange(1, n_bins) / n_bins, method="higher"))
    bin_of = np.searchsorted(edges, values, side="right")  # bin i holds edges[i-1] <= v < edges[i]
    counts = np.bincount(bin_of, minlength=edges.size + 1)
    sums = np.bincount(bin_of, weights=values, minlength=edges.size + 1)
    bins = []
    for index in range(edges.size + 1):
        lower = None if index == 0 else float(edges[index - 1])
        upper = None if index == edges.size else float(edges[index])
        count = int(counts[index])
        mean = float(sums[index] / count) if count else None
        bins.append((lower, upper, count / values.size, mean, count))
    return bins


def capture(settings: Settings, tag: str) -> str:
    """Store reference bins of every numeric contract feature (latest snapshot) under `tag`; return a summary."""
    if not tag.strip():
        raise StreamRecError("reference tag must not be empty")
    contract = load_contract()
    captured_at = datetime.now(UTC).replace(tzinfo=None)
    rows: dict[str, list] = {
        name: []
        for name in (
            "tag",
            "feature_name",
            "bin_index",
            "lower_edge",
            "upper_edge",
            "share",
            "mean_value",
            "row_count",
            "captured_at",
            "snapshot_as_of",
        )
    }
    skipped: list[str] = []
    snapshots: list[str] = []
    with connect(settings) as con:
        for entity in contract.entities.values():
            if not table_exists(con, "features", entity.model):
                raise StreamRecError(
                    f"no table features.{entity.model} in {settings.warehouse_path}: run `streamrec build` first"
                )
            numeric = [f.name for f in contract.for_entity(entity.name) if f.is_numeric]
            as_of = scalar(con, f"select max(as_of) from features.{entity.model}")
            if as_of is None:
                raise StreamRecError(f"features.{entity.model} is empty: nothing to capture")
            snapshots.append(f"{entity.model} at {as_of}")
            columns = ", ".join(f"cast({name} as double) as {name}" for name in numeric)
            data = con.sql(
                f"select {columns} from features.{entity.model} where as_of = $as_of", params={"as_of": as_of}
            ).fetchnumpy()
            for name in numeric:
                values = np.asarray(data[name], dtype=np.float64)
                if hasattr(data[name], "mask"):  # masked arrays mark nulls
                    values = np.ma.filled(data[name].astype(np.float64), np.nan)
                bins = quantile_bins(values)
                if not bins:
                    skipped.append(name)
                for index, (lower, upper, share, mean, count) in enumerate(bins):
                    for key, value in zip(
                        rows,
                        (tag, name, index, lower, upper, share, mean, count, captured_at, as_of),
                        strict=True,
                    ):
                        rows[key].append(value)
        table = pa.table(rows)
        with transaction(con):
            con.execute("create schema if not exists reference")
            con.execute(CREATE_TABLE)
            con.execute(ADD_SNAPSHOT_AS_OF)
            con.execute(f"delete from {TABLE} where tag = ?", [tag])
            con.register("new_reference_bins", table)
            con.execute(f"insert into {TABLE} ({', '.join(rows)}) select * from new_reference_bins")
            con.unregister("new_reference_bins")
    captured = len(set(rows["feature_name"]))
    note = f"; no values for {', '.join(skipped)}" if skipped else ""
    return f"reference {tag!r}: {captured} features, {len(rows['tag'])} bins from {' and '.join(snapshots)}{note}"
