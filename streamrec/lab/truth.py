"""The synthetic generator's hidden ground truth and the one behaviour model every check shares.

The generator draws user and item latent factors, a Zipf-like item popularity and a position
bias, and decides every play and skip with `GroundTruth.engagement_probability`. It stores the
truth in the `truth` schema; `load_truth` reads it back so simulators and estimator checks use
exactly the model that made the data. Features never read this schema.

Model, for user u, item i (made by creator c) shown at slot p (NaN/None/0 = organic, not in a slate):

    relevance(u, i) = sigmoid(base_logit + affinity_scale * <x_u, y_i>
                              + popularity_weight * popularity_logit_i
                              + language_bonus * [language(u) == language(c)])
    examination(p)  = 1 / log2(1 + p) ** position_bias_power        (1 for organic)
    P(play | shown) = examination(p) * relevance(u, i)

A shown item that is examined but not played is a skip; an unexamined one leaves no event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa

from streamrec.contracts import load_contract
from streamrec.core.errors import StreamRecError
from streamrec.core.warehouse import fetchall, table_exists

TRUTH_TABLES_SQL: Mapping[str, str] = {
    "user_latent": "create table truth.user_latent (user_id BIGINT primary key, factors DOUBLE[])",
    "item_latent": (
        "create table truth.item_latent (item_id BIGINT primary key, factors DOUBLE[], popularity_logit DOUBLE)"
    ),
    "params": "create table truth.params (name VARCHAR primary key, value DOUBLE)",
}

# The constants of the behaviour model; the generator stores these (and a few more) in truth.params.
DEFAULT_PARAMS: Mapping[str, float] = {
    "n_factors": 16,
    "base_logit": -0.6,
    "affinity_scale": 1.2,
    "popularity_weight": 0.12,
    "language_bonus": 1.0,
    "position_bias_power": 1.0,
    "zipf_exponent": 0.8,
    "exploration_share": 0.15,  # share of slate slots filled uniformly at random instead of by popularity
    "organic_share": 0.12,  # share of impressions that are searches (position NULL)
    "slate_size": 10,
}


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, computed without overflow warnings for large |x|."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass(frozen=True)
class GroundTruth:
    """Latent factors, popularity, languages and constants of the generator's behaviour model.

    Ids are kept sorted so ids map to rows with one `searchsorted`; languages are small ints
    (index into `languages`) so comparing them over millions of rows is cheap.
    """

    user_ids: np.ndarray  # int64, sorted
    user_factors: np.ndarray  # (n_users, d)
    user_language: np.ndarray  # int, index into `languages`
    item_ids: np.ndarray  # int64, sorted
    item_factors: np.ndarray  # (n_items, d)
    popularity_logit: np.ndarray  # (n_items,)
    item_language: np.ndarray  # the item's creator's language, index into `languages`
    languages: tuple[str, ...]
    params: Mapping[str, float] = field(default_factory=dict)

    def param(self, name: str) -> float:
        """One model constant; a missing one means the truth tables are from another generator version."""
        try:
            return float(self.params[name])
        except KeyError:
            raise StreamRecError(f"truth.params has no {name!r}: regenerate the data (`streamrec generate`)") from None

    def user_rows(self, user_ids: np.ndarray) -> np.ndarray:
        """Row index of each user id; unknown ids are refused with the first offending id."""
        return _rows(self.user_ids, np.asarray(user_ids, dtype=np.int64), "user_id")

    def item_rows(self, item_ids: np.ndarray) -> np.ndarray:
        """Row index of each item id; unknown ids are refused with the first offending id."""
        return _rows(self.item_ids, np.asarray(item_ids, dtype=np.int64), "item_id")

    def examination_probability(self, positions: np.ndarray | Sequence[float | None] | None, n: int) -> np.ndarray:
        """Probability a user looks at slot `position` (1-based); organic (NaN/None/<=0) is always examined."""
        if positions is None:
            return np.ones(n)
        pos = np.array(positions, dtype=np.float64)  # None becomes NaN
        organic = ~(pos >= 1)  # NaN compares False, so NaN counts as organic
        safe = np.where(organic, 1.0, pos)
        exam = 1.0 / np.log2(1.0 + safe) ** self.param("position_bias_power")
        return np.where(organic, 1.0, exam)

    def relevance_logit(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """The logit of P(play | examined): affinity + popularity + same-language bonus."""
        u = self.user_rows(user_ids)
        i = self.item_rows(item_ids)
        return self._relevance_logit_rows(u, i)

    def _relevance_logit_rows(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        out = np.empty(u.size)
        base = self.param("base_logit")
        affinity_scale = self.param("affinity_scale")
        popularity_weight = self.param("popularity_weight")
        language_bonus = self.param("language_bonus")
        block = 1 << 15  # gathered factor blocks stay in cache; one big gather is memory-bound
        for lo in range(0, u.size, block):
            ub, ib = u[lo : lo + block], i[lo : lo + block]
            affinity = np.einsum("nd,nd->n", self.user_factors[ub], self.item_factors[ib])
            same_language = self.user_language[ub] == self.item_language[ib]
            out[lo : lo + block] = (
                base
                + affinity_scale * affinity
                + popularity_weight * self.popularity_logit[ib]
                + language_bonus * same_language
            )
        return out

    def relevance(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """P(play | the user examined the item)."""
        return sigmoid(self.relevance_logit(user_ids, item_ids))

    def engagement_probability(
        self,
        user_ids: np.ndarray,
        item_ids: np.ndarray,
        positions: np.ndarray | Sequence[float | None] | None = None,
    ) -> np.ndarray:
        """P(user plays item | item shown at position): examination(position) * relevance(user, item)."""
        user_ids = np.asarray(user_ids, dtype=np.int64)
        item_ids = np.asarray(item_ids, dtype=np.int64)
        if user_ids.shape != item_ids.shape:
            raise StreamRecError(f"user_ids {user_ids.shape} and item_ids {item_ids.shape} differ in shape")
        exam = self.examination_probability(positions, user_ids.size)
        if exam.shape != user_ids.shape:
            raise StreamRecError(f"positions {exam.shape} and user_ids {user_ids.shape} differ in shape")
        return exam * self.relevance(user_ids, item_ids)

    def exposure_weights(self) -> np.ndarray:
        """How the generator's logging policy picks items to show: Zipf popularity mixed with uniform."""
        zipf = np.exp(self.popularity_logit - self.popularity_logit.max())
        zipf /= zipf.sum()
        share = self.param("exploration_share")
        return (1.0 - share) * zipf + share / zipf.size


def _rows(sorted_ids: np.ndarray, ids: np.ndarray, what: str) -> np.ndarray:
    if sorted_ids.size == 0:
        raise StreamRecError(f"the ground truth has no {what}s")
    first = int(sorted_ids[0])
    if int(sorted_ids[-1]) - first + 1 == sorted_ids.size:  # contiguous ids (the generator's): no search needed
        rows = np.clip(ids - first, 0, sorted_ids.size - 1)
    else:
        rows = np.minimum(np.searchsorted(sorted_ids, ids), sorted_ids.size - 1)
    bad = sorted_ids[rows] != ids
    if bad.any():
        raise StreamRecError(f"{what} {int(ids[np.flatnonzero(bad)[0]])} is not in the ground truth")
    return rows


def language_index(codes: np.ndarray, languages: Sequence[str]) -> np.ndarray:
    """Map language codes to their index in `languages` (unknown codes map to the index of 'unknown' or -1)."""
    lookup = {code: idx for idx, code in enumerate(languages)}
    fallback = lookup.get("unknown", -1)
    values, inverse = np.unique(np.asarray(codes, dtype=object).astype(str), return_inverse=True)
    mapped = np.array([lookup.get(v, fallback) for v in values], dtype=np.int16)
    return mapped[inverse]


def load_truth(con: duckdb.DuckDBPyConnection) -> GroundTruth:
    """Read the ground truth the generator stored (plus user and creator languages from `raw`)."""
    for table in ("user_latent", "item_latent", "params"):
        if not table_exists(con, "truth", table):
            raise StreamRecError(
                f"no ground truth (truth.{table} missing): only synthetic data has one; run `streamrec generate`"
            )
    languages = load_contract()["user_language_code"].codes
    users = con.sql(
        "select t.user_id, t.factors, coalesce(u.language_code, 'unknown') as language_code "
        "from truth.user_latent t left join raw.users u using (user_id) order by t.user_id"
    ).to_arrow_table()
    items = con.sql(
        "select t.item_id, t.factors, t.popularity_logit, coalesce(c.language_code, 'unknown') as language_code "
        "from truth.item_latent t left join raw.items i using (item_id) left join raw.creators c using (creator_id) "
        "order by t.item_id"
    ).to_arrow_table()
    params = dict(fetchall(con, "select name, value from truth.params"))
    return GroundTruth(
        user_ids=users.column("user_id").to_numpy(),
        user_factors=_factor_matrix(users.column("factors"), users.num_rows),
        user_language=language_index(users.column("language_code").to_numpy(zero_copy_only=False), languages),
        item_ids=items.column("item_id").to_numpy(),
        item_factors=_factor_matrix(items.column("factors"), items.num_rows),
        popularity_logit=items.column("popularity_logit").to_numpy(),
        item_language=language_index(items.column("language_code").to_numpy(zero_copy_only=False), languages),
        languages=languages,
        params=params,
    )


def _factor_matrix(column: pa.ChunkedArray, n_rows: int) -> np.ndarray:
    values = column.combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return values.reshape(n_rows, -1) if n_rows else values.reshape(0, 0)
