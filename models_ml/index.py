"""The item index: exact search for small catalogues; above a threshold, the fastest index that is good enough.

`build_index` returns an exact `IndexFlatIP` up to `exact_max_items`. Above it, it builds the
approximate candidates (IVF-Flat always, HNSW up to `hnsw_max_items` because its build is slow),
tunes each one's search breadth (IVF nprobe, HNSW efSearch) upward until recall@500 against exact
search reaches the target on a tuning sample of queries AND on a separate held-out sample, times a
single query on every candidate that qualifies and on the exact scan with one search thread (one
API request), and ships the fastest. The exact scan always qualifies, so a bundle never ships an
index below the target recall. Kind, parameters, held-out recall and latencies go into IndexInfo,
which the trainer writes into the bundle manifest.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np

RECALL_K = 500  # the retrieval depth the platform serves (top-500 candidates for the ranker)
TARGET_RECALL = 0.95  # minimum recall@500 of an approximate index vs exact search
EF_SEARCH_STEPS = (512, 768, 1024, 1536, 2048, 3072)  # HNSW efSearch values tried in order (>= k)
NPROBE_STEPS = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096)
IVF_TRAIN_MAX = 200_000  # k-means sample size: enough for ~40+ points per list at nlist 4096, and fast
HNSW_MAX_ITEMS = 200_000  # HNSW build took 900 s at 1M items on 2 cores (and never reached recall 0.95 there)
QUERY_NOISE = 0.5  # when no queries are given: item embedding + Gaussian noise of this norm, renormalised
TIMED_QUERIES = 50  # single queries timed per candidate index for the latency comparison

FLAT, IVF, HNSW = "flat_ip", "ivf_flat_ip", "hnsw_flat_ip"


@dataclass(frozen=True)
class IndexInfo:
    """What was built and how good it is; stored in the bundle manifest (kind, recall, params)."""

    kind: str  # "flat_ip" (exact), "ivf_flat_ip" or "hnsw_flat_ip"
    recall_at_500: float  # measured vs exact search on held-out queries (1.0 for the exact index)
    build_seconds: float
    params: dict[str, Any] = field(default_factory=dict)  # breadth, recall per setting, latencies, why chosen
    query_ms_p50: float | None = None  # single-query top-500 latency, one thread; None if not measured


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of the exact top-k ids each approximate result contains (ids -1 = no result)."""
    hits = [len(set(a[a >= 0].tolist()) & set(e[e >= 0].tolist())) for a, e in zip(approx, exact, strict=True)]
    return float(np.sum(hits) / max(1, int((exact >= 0).sum())))


def default_nlist(n: int) -> int:
    """IVF list count: about 4·sqrt(N) (4,000 at 1M), but at least 39 training points per list, and >= 1."""
    return max(1, min(round(4 * math.sqrt(n)), n // 39))


def _query_samples(
    embeddings: np.ndarray, queries: np.ndarray | None, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """Two disjoint query samples (tuning, held-out) of up to `n` rows each, and where they came from.

    Without given queries, they are item embeddings plus noise: a query equal to an item finds that
    item first whatever the index, which would flatter approximate search.
    """
    rng = np.random.default_rng(seed)
    if queries is None:
        pick = rng.choice(len(embeddings), size=min(2 * n, len(embeddings)), replace=False)
        base = embeddings[pick].astype(np.float32)
        noise = rng.standard_normal(base.shape).astype(np.float32)
        noise *= QUERY_NOISE / np.linalg.norm(noise, axis=1, keepdims=True)
        sample = base + noise
        sample /= np.linalg.norm(sample, axis=1, keepdims=True)
        source = f"item embeddings + noise of norm {QUERY_NOISE}"
    else:
        pick = rng.choice(len(queries), size=min(2 * n, len(queries)), replace=False)
        sample = np.asarray(queries, dtype=np.float32)[pick]
        source = "given queries"
    if len(sample) < 2:  # a single query serves as both samples
        return np.ascontiguousarray(sample), np.ascontiguousarray(sample), source
    tune, held = sample[: len(sample) // 2], sample[len(sample) // 2 :]
    return np.ascontiguousarray(tune), np.ascontiguousarray(held), source


def _latency_ms(index: faiss.Index, queries: np.ndarray, k: int, n: int = TIMED_QUERIES) -> dict[str, float]:
    """Single-query search time (p50, p99 in ms) over up to `n` queries with one FAISS thread, like one request."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        index.search(queries[:1], k)  # warm-up (page in lists / graph)
        times = []
        for query in queries[:n]:
            began = time.perf_counter()
            index.search(query[None, :], k)
            times.append((time.perf_counter() - began) * 1000)
    finally:
        faiss.omp_set_num_threads(threads)
    return {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99))}


def _tune(
    set_breadth: Any, steps: Sequence[int], search: Any, tune: np.ndarray, held: np.ndarray, exact: tuple, target: float
) -> tuple[int | None, dict[int, float], float]:
    """Raise the breadth until recall on the tuning AND held-out samples reach `target`.

    Returns (breadth or None, tuning recall per breadth tried, held-out recall at the chosen breadth).
    """
    exact_tune, exact_held = exact
    tried: dict[int, float] = {}
    for step in steps:
        set_breadth(step)
        tried[step] = round(recall_at_k(search(tune), exact_tune), 4)
        if tried[step] >= target:
            held_recall = recall_at_k(search(held), exact_held)
            if held_recall >= target:
                return step, tried, held_recall
    return None, tried, 0.0


def _build_ivf(vectors: np.ndarray, nlist: int, seed: int) -> faiss.IndexIVFFlat:
    dim = vectors.shape[1]
    quantizer = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.seed = seed
    rng = np.random.default_rng(seed)
    train = (
        vectors if len(vectors) <= IVF_TRAIN_MAX else vectors[np.sort(rng.choice(len(vectors), IVF_TRAIN_MAX, False))]
    )
    ivf.train(train)
    ivf.add(vectors)  # faiss's Python wrapper keeps `quantizer` referenced by `ivf`
    return ivf


@dataclass
class _Candidate:
    """An approximate index before tuning, with the knob that trades recall for speed."""

    index: faiss.Index
    set_breadth: Callable[[int], None]  # nprobe (IVF) or efSearch (HNSW)
    steps: list[int]  # breadths to try, smallest first
    breadth_name: str
    fixed: dict[str, Any]  # build parameters recorded in the bundle


def _ivf_candidate(vectors: np.ndarray, lists: int, seed: int) -> _Candidate:
    ivf = _build_ivf(vectors, lists, seed)

    def set_nprobe(value: int) -> None:
        ivf.nprobe = value

    steps = [s for s in NPROBE_STEPS if s < lists] + [lists]
    fixed = {"nlist": lists, "train_rows": min(len(vectors), IVF_TRAIN_MAX)}
    return _Candidate(ivf, set_nprobe, steps, "nprobe", fixed)


def _hnsw_candidate(vectors: np.ndarray, m: int, ef_construction: int) -> _Candidate:
    hnsw = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = ef_construction
    hnsw.add(vectors)

    def set_ef(value: int) -> None:
        hnsw.hnsw.efSearch = value

    return _Candidate(hnsw, set_ef, list(EF_SEARCH_STEPS), "efSearch", {"M": m, "efConstruction": ef_construction})


def _choose(
    qualified: list[tuple[str, faiss.Index, float]],
    flat: faiss.Index,
    held: np.ndarray,
    k: int,
    prefer_faster: bool,
    params: dict[str, Any],
) -> tuple[str, faiss.Index, float, float | None]:
    """The index that ships: the fastest qualifying one (exact included), or the first to qualify."""
    latency = None
    if not prefer_faster:
        chosen = qualified[0] if qualified else (FLAT, flat, 1.0)
    else:
        timed = [*qualified, (FLAT, flat, 1.0)]
        latencies = {kind: _latency_ms(index, held, k) for kind, index, _ in timed}
        for kind, ms in latencies.items():
            (params["candidates"].setdefault(kind, {}))["query_ms"] = {key: round(v, 3) for key, v in ms.items()}
        chosen = min(timed, key=lambda c: latencies[c[0]]["p50"])
        latency = latencies[chosen[0]]["p50"]
    params["chosen_because"] = (
        "lowest single-query p50 latency among indexes reaching the target recall"
        if prefer_faster
        else ("first candidate reaching the target recall" if qualified else "no candidate reached the target recall")
    )
    return chosen[0], chosen[1], chosen[2], latency


def _tune_candidate(
    candidate: _Candidate,
    build_seconds: float,
    tune: np.ndarray,
    held: np.ndarray,
    exact: tuple[np.ndarray, np.ndarray],
    k: int,
    target_recall: float,
) -> tuple[dict[str, Any], float | None]:
    """(the manifest's record of this candidate, its held-out recall or None when it missed the target).

    A qualifying candidate is left set to the smallest breadth that reached the target.
    """
    index = candidate.index
    breadth, tried, held_recall = _tune(
        candidate.set_breadth,
        candidate.steps,
        lambda q: index.search(q, k)[1],
        tune,
        held,
        exact,
        target_recall,
    )
    record: dict[str, Any] = {
        **candidate.fixed,
        "build_seconds": round(build_seconds, 2),
        f"recall_by_{candidate.breadth_name}": tried,
    }
    if breadth is None:
        record["rejected"] = f"best tuning recall@{k} {max(tried.values()):.3f} < {target_recall}"
        return record, None
    candidate.set_breadth(breadth)
    record |= {candidate.breadth_name: breadth, "held_out_recall": round(held_recall, 4)}
    return record, held_recall


def build_index(
    embeddings: np.ndarray,
    exact_max_items: int = 50_000,
    *,
    queries: np.ndarray | None = None,
    n_recall_queries: int = 200,
    candidates: Sequence[str] = (IVF, HNSW),
    nlist: int | None = None,
    hnsw_max_items: int = HNSW_MAX_ITEMS,
    hnsw_m: int = 32,
    ef_construction: int = 128,
    target_recall: float = TARGET_RECALL,
    prefer_faster: bool = True,
    seed: int = 0,
) -> tuple[faiss.Index, IndexInfo]:
    """Index unit-norm `embeddings` (N, d) for inner-product search; row i of the index is row i of the input.

    Up to `exact_max_items` rows: IndexFlatIP (exact, recall 1.0). Above: each of `candidates`
    ("ivf_flat_ip": IndexIVFFlat with `nlist` lists, default `default_nlist(N)`, k-means on up to
    200k rows, nprobe from NPROBE_STEPS; "hnsw_flat_ip": IndexHNSWFlat, skipped above
    `hnsw_max_items`, efSearch from EF_SEARCH_STEPS) is tuned to the smallest breadth reaching
    `target_recall` at k=500 on a tuning sample and a held-out sample of `n_recall_queries` queries
    each (from `queries`, e.g. user embeddings; default: item embeddings plus noise). With
    `prefer_faster`, the qualifying index (exact included) with the lowest single-query p50 latency
    ships; without, the first qualifying candidate does (exact if none). The breadth is set on the
    returned index, and `faiss.write_index` stores it (nprobe / efSearch).
    """
    started = time.perf_counter()
    vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
    n, dim = vectors.shape
    flat = faiss.IndexFlatIP(dim)
    flat.add(vectors)
    if n <= exact_max_items:
        info = IndexInfo(FLAT, 1.0, time.perf_counter() - started, {"exact_max_items": exact_max_items})
        return flat, info

    tune, held, source = _query_samples(vectors, queries, n_recall_queries, seed)
    k = min(RECALL_K, n)
    exact = (flat.search(tune, k)[1], flat.search(held, k)[1])
    params: dict[str, Any] = {
        "exact_max_items": exact_max_items,
        "recall_queries": {"tuning": len(tune), "held_out": len(held), "source": source},
        "target_recall": target_recall,
        "candidates": {},
    }
    qualified: list[tuple[str, faiss.Index, float]] = []  # (kind, index, held-out recall)
    for kind in candidates:
        if kind == HNSW and n > hnsw_max_items:
            params["candidates"][kind] = {"skipped": f"{n} items > hnsw_max_items {hnsw_max_items} (build too slow)"}
            continue
        if kind not in (IVF, HNSW):
            raise ValueError(f"unknown index candidate {kind!r}; expected {IVF!r} or {HNSW!r}")
        began = time.perf_counter()
        candidate = (
            _ivf_candidate(vectors, nlist or default_nlist(n), seed)
            if kind == IVF
            else _hnsw_candidate(vectors, hnsw_m, ef_construction)
        )
        seconds = time.perf_counter() - began
        record, held_recall = _tune_candidate(candidate, seconds, tune, held, exact, k, target_recall)
        params["candidates"][kind] = record
        if held_recall is not None:
            qualified.append((kind, candidate.index, held_recall))

    kind, index, recall, latency = _choose(qualified, flat, held, k, prefer_faster, params)
    if not qualified:
        params["fallback"] = "no approximate index reached the target recall; exact scan"
    params |= {
        key: value
        for key, value in params["candidates"].get(kind, {}).items()
        if key in ("nlist", "nprobe", "M", "efSearch")
    }
    if latency is not None:
        params["query_ms_p50"] = round(latency, 3)
    return index, IndexInfo(kind, round(float(recall), 4), time.perf_counter() - started, params, latency)


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, rows) per query; k is capped at the index size."""
    k = min(k, index.ntotal)
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
