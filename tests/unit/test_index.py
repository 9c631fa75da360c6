"""Item index: exact below the threshold, tuned HNSW above it, with recall@500 measured at build time."""

from __future__ import annotations

import faiss
import numpy as np

from models_ml.index import build_index, recall_at_k, search


def unit_vectors(n: int, d: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_small_catalogue_gets_exact_index() -> None:
    emb = unit_vectors(300)
    index, info = build_index(emb, exact_max_items=1000)
    assert info.kind == "flat_ip" and info.recall_at_500 == 1.0
    assert isinstance(index, faiss.IndexFlatIP) and index.ntotal == 300
    scores, rows = search(index, emb[:5], 10)
    assert rows.shape == (5, 10)
    assert (rows[:, 0] == np.arange(5)).all()  # each vector's nearest neighbour is itself
    assert np.allclose(scores[:, 0], 1.0, atol=1e-5)


def test_large_catalogue_gets_tuned_approximate_index_with_measured_recall() -> None:
    # Clustered vectors (like trained embeddings); a low threshold forces the approximate path.
    rng = np.random.default_rng(1)
    centres = unit_vectors(20, seed=2)
    emb = centres[rng.integers(0, 20, 4000)] + 0.3 * unit_vectors(4000, seed=3)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    index, info = build_index(emb, exact_max_items=1000, n_recall_queries=50, prefer_faster=False)
    assert info.kind == "hnsw_flat_ip"
    assert info.recall_at_500 >= 0.95
    assert info.params["efSearch"] >= 500
    # Check the reported recall independently against brute force.
    queries = emb[:50]
    exact = np.argsort(-(queries @ emb.T), axis=1)[:, :500]
    _, approx = search(index, queries, 500)
    assert recall_at_k(approx, exact) >= 0.9


def test_unreachable_recall_falls_back_to_exact() -> None:
    emb = unit_vectors(1500, d=16)
    index, info = build_index(emb, exact_max_items=1000, n_recall_queries=20, hnsw_m=4, target_recall=1.01)
    assert info.kind == "flat_ip" and "fallback" in info.params
    assert index.ntotal == 1500


def test_recall_at_k_counts_overlap() -> None:
    exact = np.array([[1, 2, 3, 4]])
    assert recall_at_k(np.array([[4, 3, 9, -1]]), exact) == 0.5


def test_faster_index_is_preferred_at_equal_recall() -> None:
    emb = unit_vectors(3000, d=16)
    index, info = build_index(emb, exact_max_items=1000, n_recall_queries=20)
    # Both latencies are measured and the shipped index is the faster one.
    faster_flat = info.params["flat_ms_per_query"] <= info.params["hnsw_ms_per_query"]
    assert info.kind == ("flat_ip" if faster_flat else "hnsw_flat_ip")
    assert isinstance(index, faiss.IndexFlatIP) == faster_flat
