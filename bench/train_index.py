"""Training and index benchmarks: two-tower epoch time at 10M interactions; index build, latency, recall.

Run: `.venv/bin/python bench/train_index.py [--rows 10000000] [--steps 200] [--items 100000 1000000]
      [--embeddings random|clustered] [--spread 0.6] [--hnsw-max-items 200000] [--skip-training]`

- Training: one epoch over `--rows` positive rows is timed on SYNTHETIC tensors of that size with the
  real TwoTower (all 29 contract features + ids, 10M ids drawn over 1M users x 100k items): `--steps`
  batches are timed and the epoch time extrapolated (rows / batch_size steps), for batch 512 and 4096.
- Index: over unit-norm 128-d vectors (`random`: isotropic Gaussian, the hardest case for ANN;
  `clustered`: the Gaussian mixture of `models_ml.synthetic_embeddings`, 2,000 centres, spread 0.6,
  calibrated on a trained demo bundle), the exact scan, IVF-Flat and HNSW (up to --hnsw-max-items)
  each tuned by `models_ml.index.build_index` (nprobe / efSearch raised until recall@500 >= 0.95 on
  200 + 200 held-out queries); build time, recall@500 vs exact on 100 fresh queries, and
  single-query top-500 latency p50/p99 over 900 other fresh queries with one search thread (one request).
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np
import torch

from streamrec.contracts import load_contract
from streamrec.models_ml.index import FLAT, HNSW, IVF, build_index, recall_at_k
from streamrec.models_ml.model import TwoTowerConfig
from streamrec.models_ml.synthetic_embeddings import SPREAD, clustered_unit_vectors, random_unit_vectors
from streamrec.models_ml.train import TrainConfig, deterministic, train_two_tower


def synthetic_positives(rows: int, n_users: int, n_items: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Named tensors shaped like `to_tensors` output for `rows` positives (values are arbitrary but valid)."""
    gen = torch.Generator().manual_seed(seed)
    contract = load_contract()
    out = {
        "user_id": torch.randint(0, n_users, (rows,), generator=gen),
        "item_id": torch.randint(0, n_items, (rows,), generator=gen),
    }
    for f in contract.for_entity("user") + contract.for_entity("item"):
        if f.codes:
            out[f.name] = torch.randint(0, len(f.codes), (rows,), generator=gen)
        else:
            out[f.name] = torch.rand(rows, generator=gen) * 10
    return out


def bench_training(rows: int, steps: int, batch_size: int = 512) -> None:
    """Seconds per step of the real two-tower loop over `rows` synthetic positives (1M users x 100k items).

    Each mode sets up the full id vocabulary (every user and item of the `rows`) and runs `steps` batches
    per process; the batch loop alone is timed (TwoTower.epoch_seconds) and the epoch extrapolated to
    rows / (nproc x batch_size) steps. Modes: dense Adam on the id tables (before), sparse id gradients
    (SparseAdam), and sparse with two data-parallel processes.
    """
    from streamrec.models_ml.distributed import train_two_tower_parallel

    contract = load_contract()
    positives = synthetic_positives(rows, n_users=1_000_000, n_items=100_000)
    user_f, item_f = contract.for_entity("user"), contract.for_entity("item")
    modes = (
        ("dense ids, 1 process", False, 1),
        ("sparse ids, 1 process", True, 1),
        ("sparse ids, 2 processes", True, 2),
        ("sparse ids, 1 process, 2 threads", True, 1),
    )
    per_step = {}
    for name, sparse, nproc in modes:
        cfg = TrainConfig(batch_size=batch_size, sparse_ids=sparse, nproc=nproc, threads=2 if "threads" in name else 1)

        if nproc > 1:
            model, _ = train_two_tower_parallel(
                positives, user_f, item_f, 1, 0, nproc, cfg=TwoTowerConfig(), train_cfg=cfg, max_steps=steps
            )
        else:
            with deterministic(0, cfg.threads):
                model, _ = train_two_tower(
                    positives, user_f, item_f, 1, 0, cfg=TwoTowerConfig(), train_cfg=cfg, max_steps=steps
                )
        per_step[name] = model.epoch_seconds[0] / steps  # the batch loop alone, setup excluded
        epoch = per_step[name] * rows / (nproc * batch_size)
        print(
            f"training: {name}, batch {batch_size}: {per_step[name] * 1000:.1f} ms/step over {steps} steps "
            f"-> {epoch:.0f} s ({epoch / 60:.1f} min) per epoch of {rows:,} rows "
            f"({per_step[modes[0][0]] / per_step[name] * nproc:.1f}x the dense epoch's speed)",
            flush=True,
        )


def embeddings(n: int, kind: str, dim: int = 128, seed: int = 0, spread: float = SPREAD) -> np.ndarray:
    """Unit-norm test vectors: isotropic (`random`) or the calibrated Gaussian mixture (`clustered`, fixed centres)."""
    if kind == "clustered":  # centre_seed 0: items and queries share clusters
        return clustered_unit_vectors(n, dim, spread=spread, seed=seed)
    return random_unit_vectors(n, dim, seed=seed)


def _time_queries(index: faiss.Index, queries: np.ndarray) -> np.ndarray:
    """Single-query top-500 latencies in ms (one FAISS thread, set by the caller)."""
    index.search(queries[:1], 500)  # warm-up
    times = []
    for q in queries:
        started = time.perf_counter()
        index.search(q[None, :], 500)
        times.append((time.perf_counter() - started) * 1000)
    return np.array(times)


def bench_index(n_items: int, kind: str, hnsw_max_items: int, spread: float = SPREAD) -> None:
    """Build exact, IVF and (up to `hnsw_max_items`) HNSW with `build_index`'s tuning; measure each on fresh queries.

    Tuning queries (200 + 200 held out) and measurement queries (100 for recall, 500 for latency)
    are disjoint draws from the same distribution. Prints one line per index and the one
    `build_index` would ship (lowest p50 among those reaching recall@500 0.95 on the fresh queries).
    """
    emb = embeddings(n_items, kind, spread=spread)
    queries = embeddings(1_400, kind, seed=1, spread=spread)
    if kind == "clustered":
        kind = f"clustered (spread {spread:g})"
    tune, fresh = queries[:400], queries[400:]
    faiss.omp_set_num_threads(2)  # build and recall measurement: both cores
    started = time.perf_counter()
    flat = faiss.IndexFlatIP(emb.shape[1])
    flat.add(emb)
    built = {FLAT: (flat, time.perf_counter() - started, {})}
    _, exact = flat.search(fresh[:100], 500)
    for candidate in (IVF, HNSW):
        if candidate == HNSW and n_items > hnsw_max_items:
            print(f"index: {n_items:,} {kind}: {candidate} skipped (build too slow above {hnsw_max_items:,} items)")
            continue
        index, info = build_index(
            emb, 0, queries=tune, candidates=(candidate,), prefer_faster=False, hnsw_max_items=n_items
        )
        if info.kind != candidate:
            print(f"index: {n_items:,} {kind}: {candidate} rejected: {info.params['candidates'][candidate]}")
            continue
        built[candidate] = (index, info.build_seconds, info.params)
    rows = {}
    for name, (index, seconds, params) in built.items():
        _, approx = index.search(fresh[:100], 500)
        faiss.omp_set_num_threads(1)  # one request = one query on one thread
        latency = _time_queries(index, fresh[100:])
        faiss.omp_set_num_threads(2)
        recall = recall_at_k(approx, exact)
        breadth = {k: params[k] for k in ("nlist", "nprobe", "M", "efSearch") if k in params}
        print(
            f"index: {n_items:,} {kind} items -> {name} {breadth} build {seconds:.1f} s, recall@500 "
            f"{recall:.3f} (fresh queries), tuning {params.get('candidates', {}).get(name, {})}; "
            f"single-query top-500 p50 {np.percentile(latency, 50):.2f} ms, p99 {np.percentile(latency, 99):.2f} ms",
            flush=True,
        )
        rows[name] = (recall, float(np.percentile(latency, 50)))
    ok = {name: p50 for name, (recall, p50) in rows.items() if recall >= 0.95}
    print(f"index: {n_items:,} {kind}: ships {min(ok, key=ok.get)} (lowest p50 with fresh recall@500 >= 0.95)")


def main() -> None:
    """Parse arguments and run the selected benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--items", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--embeddings", choices=["random", "clustered"], default="random")
    parser.add_argument("--spread", type=float, default=SPREAD, help="within-cluster spread for --embeddings clustered")
    parser.add_argument("--hnsw-max-items", type=int, default=200_000, help="skip HNSW above this (slow build)")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as `streamrec train` runs (see models_ml.train.deterministic)
    if not args.skip_training:
        bench_training(args.rows, args.steps)
    for n in args.items:
        bench_index(n, args.embeddings, args.hnsw_max_items, args.spread)


if __name__ == "__main__":
    main()
