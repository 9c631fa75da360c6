"""Item index: exact below the threshold; above it the fastest of IVF / HNSW / exact reaching recall@500 0.95."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from streamrec.models_ml.index import HNSW, IVF, build_index, default_nlist, recall_at_k, search
from streamrec.models_ml.synthetic_embeddings import clustered_unit_vectors, random_unit_vectors


def unit_vectors(n: int, d: int = 32, seed: int = 0) -> np.ndarray:
    return random_unit_vectors(n, d, seed)


@pytest.fixture(scope="module")
def clustered_catalogue() -> tuple[np.ndarray, np.ndarray, faiss.Index, object]:
    """20k clustered items, 200 queries from the same clusters, and what build_index makes of them (IVF only)."""
    items = clustered_unit_vectors(20_000, 32, n_centres=200, seed=1)
    queries = clustered_unit_vectors(200, 32, n_centres=200, seed=2)
    index, info = build_index(items, exact_max_items=5000, queries=queries, n_recall_queries=50, candidates=(IVF,))
    return items, queries, index, info


def test_small_catalogue_gets_exact_index() -> None:
    emb = unit_vectors(300)
    index, info = build_index(emb, exact_max_items=1000)
    assert info.kind == "flat_ip" and info.recall_at_500 == 1.0
    assert isinstance(index, faiss.IndexFlatIP) and index.ntotal == 300
    scores, rows = search(index, emb[:5], 10)
    assert rows.shape == (5, 10)
    assert (rows[:, 0] == np.arange(5)).all()  # each vector's nearest neighbour is itself
    assert np.allclose(scores[:, 0], 1.0, atol=1e-5)


def test_clustered_catalogue_above_threshold_gets_ivf_with_measured_recall(clustered_catalogue) -> None:
    items, queries, index, info = clustered_catalogue
    assert info.kind == "ivf_flat_ip" and isinstance(index, faiss.IndexIVFFlat)
    assert index.ntotal == len(items) and index.nlist == info.params["nlist"] == default_nlist(len(items))
    # nprobe is the smallest step that reached the target, and it is set on the returned index.
    tried = info.params["candidates"][IVF]["recall_by_nprobe"]
    assert index.nprobe == info.params["nprobe"] < index.nlist
    assert tried[index.nprobe] >= 0.95 and all(r < 0.95 for p, r in tried.items() if p < index.nprobe)
    assert info.recall_at_500 >= 0.95 and info.query_ms_p50 is not None
    # The exact scan was timed too and lost (otherwise it would have shipped).
    assert info.params["candidates"]["flat_ip"]["query_ms"]["p50"] >= info.query_ms_p50
    # Independent check with queries build_index did not see.
    fresh = queries[100:]
    exact = np.argsort(-(fresh @ items.T), axis=1)[:, :500]
    _, approx = search(index, fresh, 500)
    assert recall_at_k(approx, exact) >= 0.95


def test_saved_ivf_index_keeps_nprobe_and_finds_its_own_items(clustered_catalogue, tmp_path) -> None:
    items, _, index, info = clustered_catalogue
    path = tmp_path / "item_index.faiss"
    faiss.write_index(index, str(path))
    loaded = faiss.read_index(str(path))
    assert isinstance(loaded, faiss.IndexIVFFlat) and loaded.nprobe == info.params["nprobe"] > 1
    # What the bundle verifier does: sampled items find themselves in their own top 10.
    rows = np.linspace(0, len(items) - 1, 64).astype(np.int64)
    _, found = loaded.search(items[rows], 10)
    assert all(row in set(hits.tolist()) for row, hits in zip(rows, found, strict=True))


def test_approximate_index_is_chosen_only_when_it_reaches_the_target() -> None:
    # Isotropic random vectors: IVF must probe most lists, so the choice depends on measured latency;
    # whatever ships, its reported recall is the target or better and both candidates were timed.
    emb = unit_vectors(6000, d=16, seed=4)
    index, info = build_index(emb, exact_max_items=1000, n_recall_queries=30, candidates=(IVF,))
    ivf = info.params["candidates"][IVF]
    assert ivf["held_out_recall"] >= 0.95
    timed = {kind: c["query_ms"]["p50"] for kind, c in info.params["candidates"].items()}
    assert info.kind == min(timed, key=timed.get) and isinstance(index, faiss.IndexIVFFlat) == (info.kind == IVF)
    assert info.recall_at_500 == (1.0 if info.kind == "flat_ip" else ivf["held_out_recall"])


def test_hnsw_candidate_is_tuned_and_skipped_above_its_limit() -> None:
    emb = clustered_unit_vectors(3000, 16, n_centres=30, seed=5)
    index, info = build_index(emb, exact_max_items=1000, n_recall_queries=30, candidates=(HNSW,), prefer_faster=False)
    assert info.kind == "hnsw_flat_ip" and index.hnsw.efSearch == info.params["efSearch"] >= 500
    _, skipped = build_index(emb, exact_max_items=1000, n_recall_queries=10, candidates=(HNSW,), hnsw_max_items=2000)
    assert "skipped" in skipped.params["candidates"][HNSW] and skipped.kind == "flat_ip"


def test_unreachable_recall_falls_back_to_exact() -> None:
    emb = unit_vectors(1500, d=16)
    index, info = build_index(emb, exact_max_items=1000, n_recall_queries=20, hnsw_m=4, target_recall=1.01)
    assert info.kind == "flat_ip" and "fallback" in info.params
    assert all("rejected" in c for kind, c in info.params["candidates"].items() if kind != "flat_ip")
    assert index.ntotal == 1500


def test_recall_at_k_counts_overlap() -> None:
    exact = np.array([[1, 2, 3, 4]])
    assert recall_at_k(np.array([[4, 3, 9, -1]]), exact) == 0.5
