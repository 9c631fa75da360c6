"""Candidate sources: the merge keeps each row once, source inputs follow the lists, neighbour scores add up."""

from __future__ import annotations

import numpy as np

from streamrec.models_ml.sources import (
    NeighbourTable,
    SourceSizes,
    build_sources,
    merge_candidates,
    merged_candidates,
    ranks_desc,
)


def test_merge_keeps_first_seen_order_and_each_row_once() -> None:
    merged = merge_candidates([np.array([5, 3, 9]), np.array([3, 7]), np.array([9, 1, 7])])
    assert merged.tolist() == [5, 3, 9, 7, 1]


def test_ranks_saturate_past_the_list_and_for_zero_scores() -> None:
    ranks = ranks_desc(np.array([0.5, 0.0, 0.9, 0.2, 0.2]), cap=2)
    assert ranks.tolist() == [2.0, 3.0, 1.0, 3.0, 3.0]  # ties by position; past the cap and zero: cap + 1


def test_neighbour_scores_sum_similarities_of_recent_items() -> None:
    table = NeighbourTable.from_rows(np.array([0, 0, 1, -1]), np.array([1, 2, 2, 0]), np.array([0.5, 0.1, 0.3, 9.0]), 3)
    assert table.scores(np.array([0, 1]), 3).tolist() == [0.0, 0.5, 0.4]  # the -1 row (not in the catalogue) dropped


def test_merged_candidates_are_unique_catalogue_rows_with_every_source_input() -> None:
    item_ids = np.array([10, 11, 12, 13, 14, 15], dtype=np.int64)
    embeddings = np.eye(6, dtype=np.float32)
    sources = build_sources(
        item_ids,
        {"item_id": np.array([10, 10, 99]), "neighbour_item_id": np.array([14, 15, 10]),
         "similarity_score": np.array([0.6, 0.2, 1.0])},
        {"user_id": np.array([1]), "item_id": np.array([10])},
        popularity=np.array([5.0, 4.0, 3.0, 0.0, 0.0, 1.0]),
        item_embeddings=embeddings,
        sizes=SourceSizes(two_tower=2, neighbours=1, popularity=2, ease=0),
    )  # fmt: skip
    query = embeddings[[3]]
    rows, inputs = merged_candidates(sources, 1, query, np.array([3, 2]), np.array([0, 1, 2, 5]))
    # two-tower [3, 2], then the one neighbour (row 4, item 14; item 99 is not in the catalogue), then popularity
    assert rows.tolist() == [3, 2, 4, 0, 1]
    assert len(set(rows.tolist())) == len(rows) and rows.max() < len(item_ids)
    assert inputs["two_tower_rank"].tolist() == [1.0, 2.0, 3.0, 3.0, 3.0]
    assert inputs["neighbour_score"].tolist() == [0.0, 0.0, 0.6, 0.0, 0.0]
    assert inputs["neighbour_rank"].tolist() == [2.0, 2.0, 1.0, 2.0, 2.0]
    assert inputs["popularity_rank"].tolist() == [3.0, 3.0, 3.0, 1.0, 2.0]
    assert inputs["two_tower_score"].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
