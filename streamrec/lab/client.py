"""A Python client for notebooks: online and point-in-time features, recommendations and the scorecard.

    from streamrec.client import Client
    client = Client()                                   # STREAMREC_HOME, or Client(home="...")
    client.online_features(user_ids=[1, 2, 3])          # the promoted bundle's serving snapshot
    client.historical_features(entities)                # (user_id | item_id, event_ts) -> features as of then
    client.recommend(7, k=10).item_ids                  # in process from the promoted bundle
    client.recommend(7, k=10, url="http://127.0.0.1:8000").item_ids   # or over HTTP
    client.scorecard()

Every table comes back as a `pyarrow.Table`; `.to_pandas()` needs the `pandas` extra and
`polars.from_arrow(table)` the `polars` extra (`pip install 'streamrec[notebook]'`). The warehouse is
opened read-only per call, so a notebook never holds the file a `streamrec build` needs. docs/python.md
walks through every call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings

if TYPE_CHECKING:  # the serving modules load torch and FAISS: imported where used
    from streamrec.api.services.recommender import Recommender
    from streamrec.api.services.serving_bundle import ActivePointer, ServingBundle

Entity = Literal["user", "item"]
KEYS: dict[str, str] = {"user": "user_id", "item": "item_id"}
ONLINE_FILES: dict[str, str] = {
    "user": "online_features/user_features.parquet",
    "item": "online_features/item_features.parquet",
}


@dataclass(frozen=True)
class RecommendationPage:
    """One page: item ids in slot order, with the ranker score and logging propensity of each slot."""

    user_id: int
    model_version: str
    policy: str
    item_ids: list[int]
    scores: list[float]
    propensities: list[float]
    request_id: str | None = None  # set over HTTP (the page is in the server's impression log)

    def to_arrow(self) -> pa.Table:
        """The page as a table: position, item_id, score, propensity."""
        return pa.table(
            {
                "position": pa.array(range(1, len(self.item_ids) + 1), pa.int32()),
                "item_id": pa.array(self.item_ids, pa.int64()),
                "score": pa.array(self.scores, pa.float64()),
                "propensity": pa.array(self.propensities, pa.float64()),
            }
        )


def as_arrow(table: Any) -> pa.Table:
    """A pyarrow Table from a pyarrow Table, a pandas or polars DataFrame, a dict of columns or a list of dicts."""
    if isinstance(table, pa.Table):
        return table
    if isinstance(table, pa.RecordBatch):
        return pa.Table.from_batches([table])
    if hasattr(table, "to_arrow"):  # polars
        return table.to_arrow()
    if type(table).__module__.startswith("pandas"):
        return pa.Table.from_pandas(table, preserve_index=False)
    if isinstance(table, Mapping):
        return pa.table(dict(table))
    if isinstance(table, Sequence) and all(isinstance(row, Mapping) for row in table):
        return pa.Table.from_pylist(list(table))
    raise StreamRecError(
        f"expected a pyarrow Table, a pandas or polars DataFrame, a dict of columns or a list of dicts, "
        f"not {type(table).__name__}"
    )


@dataclass
class Client:
    """Read-only access to one STREAMREC_HOME (default: the environment's)."""

    home: Path | str | None = None
    settings: Settings = field(init=False)
    _bundle: ServingBundle | None = field(default=None, init=False, repr=False)
    _recommender: Recommender | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.settings = Settings(home=Path(self.home).resolve()) if self.home is not None else Settings.from_env()

    # -- online features -------------------------------------------------------------------------------
    def _active(self) -> ActivePointer:
        from streamrec.api.services.serving_bundle import read_active

        pointer = read_active(self.settings.artifacts_dir)
        if pointer is None:
            raise StreamRecError(
                f"nothing is promoted in {self.settings.artifacts_dir}: run `streamrec train` and "
                "`streamrec promote VERSION` first"
            )
        return pointer

    def online_features(self, user_ids: Iterable[int] | None = None, item_ids: Iterable[int] | None = None) -> pa.Table:
        """Serving features of these users (or items), one row per id in the order given, from the promoted bundle.

        The snapshot is the one the API serves (the bundle's `online_features/`), not the warehouse's
        latest build. An id the snapshot does not know gets a row of nulls (Feast's behaviour).
        """
        if (user_ids is None) == (item_ids is None):
            raise StreamRecError("online_features: give user_ids or item_ids (one of them)")
        entity: Entity = "user" if user_ids is not None else "item"
        ids = [int(i) for i in (user_ids if user_ids is not None else item_ids)]  # type: ignore[union-attr]
        pointer = self._active()
        snapshot = pq.read_table(pointer.bundle_dir / ONLINE_FILES[entity])
        key = KEYS[entity]
        wanted = pa.table({key: pa.array(ids, pa.int64()), "_order": pa.array(range(len(ids)), pa.int64())})
        snapshot = snapshot.set_column(snapshot.schema.get_field_index(key), key, snapshot[key].cast(pa.int64()))
        joined = wanted.join(snapshot, key, join_type="left outer").sort_by("_order").drop(["_order"])
        return joined.select([key, *(c for c in snapshot.column_names if c != key)])

    # -- point-in-time features ------------------------------------------------------------------------
    def historical_features(
        self, entities: Any, timestamp_column: str = "event_ts", entity: Entity | None = None
    ) -> pa.Table:
        """Each entity row joined with its features as they were at its timestamp (no leakage from later).

        `entities` holds `user_id` or `item_id` and `timestamp_column`; each row gets the feature
        snapshot with the latest `as_of <= timestamp` (a snapshot at `as_of` uses only events before
        `as_of`, docs/features.md), and nulls when none is that old. Rows keep their input order.
        """
        table = as_arrow(entities)
        if entity is None:
            found = [e for e, k in KEYS.items() if k in table.column_names]
            if len(found) != 1:
                raise StreamRecError("historical_features: the entity table needs exactly one of user_id, item_id")
            entity = found[0]  # type: ignore[assignment]
        key = KEYS[entity]  # type: ignore[index]
        for needed in (key, timestamp_column):
            if needed not in table.column_names:
                raise StreamRecError(f"historical_features: the entity table has no {needed} column")
        table = table.append_column("_order", pa.array(range(table.num_rows), pa.int64()))
        from streamrec.core.warehouse import connect

        with connect(self.settings, read_only=True) as con:
            con.register("_entities", table)
            features = f"features.{entity}_features"
            columns = [r[0] for r in con.execute(f"select * from {features} limit 0").description]
            picked = ", ".join(f'f."{c}"' for c in columns if c != key)
            query = (
                f'select e.*, {picked} from _entities e asof left join {features} f on e."{key}" = f."{key}" '
                f'and cast(e."{timestamp_column}" as timestamp) >= f.as_of order by e._order'
            )
            result = con.sql(query).to_arrow_table()
        return result.drop(["_order"])

    # -- recommendations -------------------------------------------------------------------------------
    def recommend(
        self, user_id: int, k: int = 10, language: str | None = None, url: str | None = None
    ) -> RecommendationPage:
        """A page for `user_id`: over HTTP when `url` is given (logged like any request), else in process.

        In process the promoted bundle is loaded once (verified, as the API does) and the API's own
        recommender runs on it: same policies (holdout, cold start, fairness re-rank, exploration), but
        nothing is logged, so these pages are for analysis, not for attribution.
        """
        if url is not None:
            return self._recommend_http(url, user_id, k, language)
        from streamrec.api.config import ApiSettings
        from streamrec.api.services.fairness import ExposureTracker
        from streamrec.api.services.recommender import Recommender

        bundle = self._serving_bundle()
        if self._recommender is None:
            self._recommender = Recommender(ApiSettings.from_env(), ExposureTracker())
        page = self._recommender.recommend(bundle, int(user_id), int(k), language)
        return RecommendationPage(
            user_id=int(user_id),
            model_version=bundle.version,
            policy=page.policy,
            item_ids=bundle.item_ids[page.rows].tolist(),  # index rows -> catalogue item ids
            scores=page.scores.tolist(),
            propensities=page.propensities.tolist(),
        )

    def _serving_bundle(self) -> ServingBundle:
        from streamrec.api.services.serving_bundle import load_serving_bundle

        pointer = self._active()
        if self._bundle is None or self._bundle.version != pointer.version:
            self._bundle = load_serving_bundle(
                pointer.bundle_dir,
                expected_version=pointer.version,
                expected_manifest_sha256=pointer.manifest_sha256,
                promoted_at=pointer.promoted_at,
            )
        return self._bundle

    @staticmethod
    def _recommend_http(url: str, user_id: int, k: int, language: str | None) -> RecommendationPage:
        import httpx

        params: dict[str, Any] = {"user_id": int(user_id), "k": int(k)}
        if language is not None:
            params["language"] = language
        try:
            response = httpx.get(f"{url.rstrip('/')}/v1/recommendations", params=params, timeout=30.0)
        except httpx.HTTPError as exc:
            raise StreamRecError(f"cannot reach the API at {url}: {exc}") from None
        if response.status_code != 200:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise StreamRecError(f"the API answered {response.status_code}: {detail}")
        body = response.json()
        return RecommendationPage(
            user_id=int(user_id),
            model_version=body["model_version"],
            policy=body["policy"],
            item_ids=[item["item_id"] for item in body["items"]],
            scores=[item["score"] for item in body["items"]],
            propensities=[item["propensity"] for item in body["items"]],
            request_id=body["request_id"],
        )

    # -- evaluation ------------------------------------------------------------------------------------
    def scorecard(self) -> pa.Table:
        """`evaluation.scorecard`: one row per metric with value, interval, threshold and status."""
        return self.query("select * from evaluation.scorecard order by metric")

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pa.Table:
        """Any read-only query on the published warehouse, as Arrow."""
        import duckdb

        from streamrec.core.warehouse import connect

        with connect(self.settings, read_only=True) as con:
            try:
                return con.sql(sql, params=params).to_arrow_table()
            except duckdb.Error as exc:
                raise StreamRecError(f"query failed: {exc}") from None
