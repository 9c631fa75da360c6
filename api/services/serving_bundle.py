"""A bundle ready to serve: models, index and the online feature snapshot as aligned tensors, built once.

Everything a request needs is precomputed here, at load time: the user and item feature columns
encoded the way the models read them (`models_ml.tensors.to_tensors`, by name), users sorted for a
binary-search lookup, item rows aligned with the FAISS index, creator groups and popularity
orders. A `ServingBundle` is never mutated after it is built, so a request that holds a
reference to one is served wholly by that version, whatever reloads happen meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from streamrec.api.services.fairness import N_GROUPS, group_of
from streamrec.contracts.schema import ContractViolation, FeatureContract, load_contract
from streamrec.core.errors import StreamRecError
from streamrec.models_ml.model import TwoTower
from streamrec.models_ml.ranker import PrecomputedItems, Ranker
from streamrec.models_ml.sources import CandidateSources, SourceSizes, build_sources

# Per creator group, its most popular items (with their embeddings) that the fairness re-rank may reach
# when retrieval returned none of an under-exposed group's items.
GROUP_SHORTLIST_SIZE = 1000


@dataclass(frozen=True, eq=False)
class ServingBundle:
    """One bundle version in memory; immutable once built."""

    version: str
    manifest_sha256: str
    contract_sha256: str
    index_kind: str
    two_tower: TwoTower  # eval mode
    ranker: Ranker  # eval mode
    index: faiss.Index  # row i is item_ids[i]
    item_ids: np.ndarray  # (n_items,) int64, index row order
    item_creator_ids: np.ndarray  # (n_items,) int64
    item_groups: np.ndarray  # (n_items,) int16 creator group (fairness)
    item_features: Mapping[str, torch.Tensor]  # name -> (n_items,) encoded, index row order
    user_ids: np.ndarray  # (n_users,) int64 sorted
    user_features: Mapping[str, torch.Tensor]  # name -> (n_users,) encoded, user_ids order
    popularity: np.ndarray  # (n_items,) float64 item_popularity_30d_score
    popular_rows: np.ndarray  # item rows by popularity, best first
    popular_rows_by_language: Mapping[str, np.ndarray]  # creator language -> rows, best first
    group_sizes: np.ndarray  # (N_GROUPS,) items per creator group
    ranker_items: PrecomputedItems  # the ranker's item-feature columns, index row order
    group_shortlists: Mapping[int, tuple[np.ndarray, np.ndarray]]  # group -> (item rows, (m, 128) embeddings)
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    promoted_at: str | None = None
    snapshot_as_of: str | None = None  # the online features' as_of (streamrec_serving_info's snapshot)
    snapshot_id: str | None = None  # the materialized feature snapshot serving (None: the bundle's own features)
    bundle_user_ids: np.ndarray | None = None  # the bundle's own users, kept once a snapshot replaced them
    _item_sorter: np.ndarray | None = field(default=None, repr=False)
    sources: CandidateSources | None = None  # item-to-item + popularity sources (None: two-tower candidates only)

    @property
    def n_items(self) -> int:
        """Items in the catalogue (= index rows)."""
        return len(self.item_ids)

    def user_row(self, user_id: int) -> int | None:
        """Row of a user in the online snapshot, or None for a user the bundle does not know."""
        pos = int(np.searchsorted(self.user_ids, user_id))
        if pos < len(self.user_ids) and self.user_ids[pos] == user_id:
            return pos
        return None

    def item_rows(self, item_ids: np.ndarray) -> np.ndarray:
        """Index row of each item id, -1 where the catalogue does not have it."""
        item_ids = np.asarray(item_ids, dtype=np.int64)
        assert self._item_sorter is not None  # set by build_serving_bundle
        sorted_ids = self.item_ids[self._item_sorter]
        pos = np.clip(np.searchsorted(sorted_ids, item_ids), 0, max(len(sorted_ids) - 1, 0))
        found = sorted_ids[pos] == item_ids if len(sorted_ids) else np.zeros(len(item_ids), dtype=bool)
        return np.where(found, self._item_sorter[pos], -1)


def _columns(table: pa.Table) -> dict[str, np.ndarray]:
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}


def _snapshot_as_of(table: pa.Table) -> str | None:
    """The latest `as_of` of an online feature table (None when it has no such column or no rows)."""
    if "as_of" not in table.column_names or table.num_rows == 0:
        return None
    latest = pc.max(table["as_of"]).as_py()
    return latest.isoformat() if hasattr(latest, "isoformat") else str(latest)


def _validated_columns(
    contract: FeatureContract, online_user_features: pa.Table, online_item_features: pa.Table, source: str
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(user columns, item columns) by name, keys present and every contract feature validated."""
    from streamrec.models_ml.tensors import validate_features

    users = _columns(online_user_features)
    items = _columns(online_item_features)
    required = (("user_id", users, "user"), ("item_id", items, "item"), ("creator_id", items, "item"))
    for needed, columns, what in required:
        if needed not in columns:
            raise ContractViolation(f"{source}: online {what} features have no {needed} column")
    validate_features(users, contract.for_entity("user"), f"{source}: online_features/user_features.parquet")
    validate_features(items, contract.for_entity("item"), f"{source}: online_features/item_features.parquet")
    return users, items


def _users_by_id(users: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """User rows sorted by id, one row each (the snapshot holds one as_of)."""
    order = np.argsort(users["user_id"].astype(np.int64), kind="stable")
    users = {name: values[order] for name, values in users.items()}
    user_ids = users["user_id"].astype(np.int64)
    if len(user_ids) and (np.diff(user_ids) == 0).any():
        raise StreamRecError(f"{source}: online user features repeat a user_id (expected one snapshot row per user)")
    return users


def _items_aligned(items: dict[str, np.ndarray], item_ids: np.ndarray, source: str) -> dict[str, np.ndarray]:
    """Item rows aligned with the index: row i of every array is item_ids[i]."""
    table_ids = items["item_id"].astype(np.int64)
    sorter = np.argsort(table_ids, kind="stable")
    pos = np.clip(np.searchsorted(table_ids[sorter], item_ids), 0, max(len(table_ids) - 1, 0))
    missing = item_ids[table_ids[sorter][pos] != item_ids] if len(table_ids) else item_ids
    if len(missing):
        raise StreamRecError(
            f"{source}: item {int(missing[0])} is in the index but not in online item features "
            f"({len(missing)} such items)"
        )
    return {name: values[sorter[pos]] for name, values in items.items()}


@dataclass(frozen=True)
class _PopularityLists:
    popularity: np.ndarray
    popular_rows: np.ndarray
    by_language: dict[str, np.ndarray]
    group_shortlists: dict[int, tuple[np.ndarray, np.ndarray]]


def _popularity_lists(
    popularity: np.ndarray,
    item_ids: np.ndarray,
    language_index: np.ndarray,
    language_codes: Sequence[str],
    groups: np.ndarray,
    item_embeddings: np.ndarray,
) -> _PopularityLists:
    """Rows by popularity (ties by item id: deterministic), per creator language, and per group's shortlist."""
    popular_rows = np.lexsort((item_ids, -popularity))
    popular_languages = language_index[popular_rows]
    by_language = {code: popular_rows[popular_languages == i] for i, code in enumerate(language_codes)}
    popular_groups = groups[popular_rows]
    shortlists = {}
    for group in np.unique(groups).tolist():
        rows = popular_rows[popular_groups == group][:GROUP_SHORTLIST_SIZE]
        shortlists[int(group)] = (rows, np.ascontiguousarray(item_embeddings[rows], dtype=np.float32))
    return _PopularityLists(popularity, popular_rows, by_language, shortlists)


def _extra_sources(
    candidate_sources: list[dict[str, Any]] | None,
    item_ids: np.ndarray,
    popularity: np.ndarray,
    item_embeddings: np.ndarray,
    item_neighbours: pa.Table | None,
    user_recent_items: pa.Table | None,
    ease_weights: np.ndarray | None,
    user_history: pa.Table | None,
) -> CandidateSources | None:
    """The item-to-item, popularity and EASE sources when the manifest lists them (None: the index alone)."""
    listed = {str(entry.get("name")): entry for entry in candidate_sources or []}
    if "item_neighbours" not in listed or item_neighbours is None or user_recent_items is None:
        return None
    sizes = SourceSizes(
        two_tower=int(listed.get("two_tower", {}).get("k", SourceSizes.two_tower)),
        neighbours=int(listed["item_neighbours"].get("k", SourceSizes.neighbours)),
        popularity=int(listed.get("popularity", {}).get("k", SourceSizes.popularity)),
        ease=int(listed.get("ease", {}).get("k", SourceSizes.ease)),
    )
    with_ease = "ease" in listed
    return build_sources(
        item_ids,
        _columns(item_neighbours),
        _columns(user_recent_items),
        popularity,
        item_embeddings,
        sizes,
        ease_weights=ease_weights if with_ease else None,
        history=_columns(user_history) if with_ease and user_history is not None else None,
    )


def build_serving_bundle(
    *,
    version: str,
    manifest_sha256: str,
    two_tower: Any,
    ranker: Any,
    index: Any,
    item_ids: np.ndarray,
    online_user_features: pa.Table,
    online_item_features: pa.Table,
    item_embeddings: np.ndarray,
    contract: FeatureContract | None = None,
    index_kind: str = "unknown",
    promoted_at: str | None = None,
    source: str = "bundle",
    candidate_sources: list[dict[str, Any]] | None = None,
    item_neighbours: pa.Table | None = None,
    user_recent_items: pa.Table | None = None,
    ease_weights: np.ndarray | None = None,
    user_history: pa.Table | None = None,
) -> ServingBundle:
    """Validate the online snapshot against the contract (by name) and precompute everything requests use.

    With `candidate_sources` listing item_neighbours (and its two tables) requests merge the item-to-item and
    popularity candidates with the index's, each with its source inputs for the ranker.
    """
    from streamrec.models_ml.tensors import to_tensors

    contract = contract or load_contract()
    users, items = _validated_columns(contract, online_user_features, online_item_features, source)
    users = _users_by_id(users, source)
    item_ids = np.asarray(item_ids, dtype=np.int64)
    items = _items_aligned(items, item_ids, source)

    user_tensors = to_tensors(users, contract.for_entity("user"), keys=("user_id",))
    item_tensors = to_tensors(items, contract.for_entity("item"), keys=("item_id",))
    language_index = item_tensors["item_creator_language_code"].numpy()
    groups = group_of(language_index, item_tensors["item_creator_is_new_flag"].numpy())
    lists = _popularity_lists(
        np.nan_to_num(items["item_popularity_30d_score"].astype(np.float64)),
        item_ids,
        language_index,
        contract["item_creator_language_code"].codes,
        groups,
        item_embeddings,
    )
    return ServingBundle(
        version=version,
        manifest_sha256=manifest_sha256,
        contract_sha256=contract.sha256,
        index_kind=index_kind,
        two_tower=two_tower,
        ranker=ranker,
        index=index,
        item_ids=item_ids,
        item_creator_ids=items["creator_id"].astype(np.int64),
        item_groups=groups,
        item_features=item_tensors,
        user_ids=users["user_id"].astype(np.int64),
        user_features=user_tensors,
        popularity=lists.popularity,
        popular_rows=lists.popular_rows,
        popular_rows_by_language=lists.by_language,
        group_sizes=np.bincount(groups, minlength=N_GROUPS),
        ranker_items=ranker.precompute_items(item_tensors),
        group_shortlists=lists.group_shortlists,
        promoted_at=promoted_at,
        snapshot_as_of=_snapshot_as_of(online_user_features),
        _item_sorter=np.argsort(item_ids, kind="stable"),
        sources=_extra_sources(
            candidate_sources,
            item_ids,
            lists.popularity,
            item_embeddings,
            item_neighbours,
            user_recent_items,
            ease_weights,
            user_history,
        ),
    )


def load_serving_bundle(
    bundle_dir: Path,
    *,
    expected_version: str | None = None,
    expected_manifest_sha256: str | None = None,
    promoted_at: str | None = None,
    contract: FeatureContract | None = None,
) -> ServingBundle:
    """Verify and load a bundle directory (models_ml.bundle.load_bundle), then build its serving arrays."""
    from streamrec.models_ml.bundle import load_bundle

    loaded = load_bundle(
        bundle_dir,
        contract,
        expected_version=expected_version,
        expected_manifest_sha256=expected_manifest_sha256,
    )
    return build_serving_bundle(
        version=loaded.manifest.version,
        manifest_sha256=loaded.manifest.sha256,
        two_tower=loaded.two_tower,
        ranker=loaded.ranker,
        index=loaded.index,
        item_ids=loaded.item_ids,
        online_user_features=loaded.online_user_features,
        online_item_features=loaded.online_item_features,
        item_embeddings=loaded.item_embeddings,
        contract=contract,
        index_kind=loaded.manifest.index_kind,
        promoted_at=promoted_at,
        source=f"bundle {bundle_dir}",
        candidate_sources=loaded.manifest.candidate_sources,
        item_neighbours=loaded.item_neighbours,
        user_recent_items=loaded.user_recent_items,
        ease_weights=loaded.ease_weights,
        user_history=loaded.user_history,
    )


@dataclass(frozen=True)
class ActivePointer:
    """What `artifacts/ACTIVE.json` says should serve (written by `streamrec promote` / `rollback`)."""

    version: str
    manifest_sha256: str | None
    promoted_at: str | None
    bundle_dir: Path
    promotion_id: str | None = None


def read_active(artifacts_dir: Path) -> ActivePointer | None:
    """ACTIVE.json, checked against the registry's seal (core.registry_seal); None when nothing was promoted.

    Any malformed pointer (not JSON, not an object, not UTF-8, a missing field, a wrong seal) raises
    StreamRecError naming the file, so a reload answers 409 and a starting server stays live but not ready.
    """
    from streamrec.core.registry_seal import read_active_file

    pointer = read_active_file(artifacts_dir)
    if pointer is None:
        return None
    stored = Path(pointer.bundle_path)  # relative paths are under artifacts/
    return ActivePointer(
        version=pointer.version,
        manifest_sha256=pointer.manifest_sha256,
        promoted_at=pointer.promoted_at,
        bundle_dir=stored if stored.is_absolute() else artifacts_dir / stored,
        promotion_id=pointer.promotion_id,
    )


def registered_bundle(artifacts_dir: Path, version: str) -> tuple[Path, str]:
    """(bundle directory, registered manifest sha256) of a registered version, from its sealed record."""
    from streamrec.core.registry_seal import read_registration

    record = read_registration(artifacts_dir, version)
    stored = Path(record.bundle_path)
    return (stored if stored.is_absolute() else artifacts_dir / stored), record.manifest_sha256
