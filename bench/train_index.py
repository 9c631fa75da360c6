"""Training and index benchmarks: two-tower epoch time at 10M interactions; index build, latency, recall.

Run: `.venv/bin/python bench/train_index.py [--rows 10000000] [--steps 200] [--items 100000 1000000]
      [--embeddings random|clustered]`

- Training: one epoch over `--rows` positive rows is timed on SYNTHETIC tensors of that size with the
  real TwoTower (all 29 contract features + ids, 10M ids drawn over 1M users x 100k items): `--steps`
  batches are timed and the epoch time extrapolated (rows / batch_size steps), for batch 512 and 4096.
- Index: `models_ml.index.build_index` over unit-norm 128-d vectors (`random`: isotropic Gaussian,
  the hardest case for ANN; `clustered`: 1,000 centres + noise, closer to trained embeddings);
  build time, the efSearch it tuned, recall@500 vs exact on 200 queries, and single-query top-500
  latency p50/p99 over 500 queries with one search thread (like one API worker).
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np
import torch

from contracts import load_contract
from models_ml.index import build_index, recall_at_k
from models_ml.model import TwoTowerConfig
from models_ml.train import TrainConfig, train_two_tower


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


def bench_training(rows: int, steps: int) -> None:
    """Time `steps` batches of the real training loop and extrapolate to one epoch over `rows`."""
    contract = load_contract()
    positives = synthetic_positives(rows, n_users=1_000_000, n_items=100_000)
    for batch_size in (512, 4096):
        subset = {k: v[: steps * batch_size] for k, v in positives.items()}
        started = time.perf_counter()
        train_two_tower(
            subset,
            contract.for_entity("user"),
            contract.for_entity("item"),
            epochs=1,
            seed=0,
            cfg=TwoTowerConfig(),
            train_cfg=TrainConfig(batch_size=batch_size),
        )
        seconds = time.perf_counter() - started
        per_step = seconds / steps
        epoch = per_step * rows / batch_size
        print(
            f"training: batch {batch_size}: {per_step * 1000:.1f} ms/step over {steps} steps "
            f"(incl. setup) -> {epoch:.0f} s ({epoch / 60:.1f} min) per epoch of {rows:,} rows"
        )


def embeddings(n: int, kind: str, dim: int = 128, seed: int = 0) -> np.ndarray:
    """Unit-norm test vectors: isotropic (`random`) or around 1,000 centres (`clustered`)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim), dtype=np.float32)
    if kind == "clustered":
        centres = rng.standard_normal((1000, dim), dtype=np.float32)
        x = centres[rng.integers(0, 1000, n)] + 0.5 * x
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def bench_index(n_items: int, kind: str) -> None:
    """Build, then measure recall and single-query latency of what `build_index` chose."""
    emb = embeddings(n_items, kind)
    queries = embeddings(700, kind, seed=1)
    faiss.omp_set_num_threads(2)
    index, info = build_index(emb, queries=queries[:200])
    faiss.omp_set_num_threads(1)
    latencies = []
    for q in queries[200:]:
        started = time.perf_counter()
        index.search(q[None, :], 500)
        latencies.append((time.perf_counter() - started) * 1000)
    flat = faiss.IndexFlatIP(emb.shape[1])
    flat.add(emb)
    _, exact = flat.search(queries[200:300], 500)
    _, approx = index.search(queries[200:300], 500)
    flat_latency = []
    for q in queries[300:350]:
        started = time.perf_counter()
        flat.search(q[None, :], 500)
        flat_latency.append((time.perf_counter() - started) * 1000)
    print(
        f"index: {n_items:,} {kind} items -> {info.kind} {info.params.get('efSearch', '')} "
        f"build {info.build_seconds:.1f} s, recall@500 {info.recall_at_500:.3f} (build-time sample), "
        f"{recall_at_k(approx, exact):.3f} (fresh queries); single-query top-500 latency "
        f"p50 {np.percentile(latencies, 50):.2f} ms, p99 {np.percentile(latencies, 99):.2f} ms; "
        f"exact flat p50 {np.percentile(flat_latency, 50):.2f} ms; tried {info.params.get('recall_by_efSearch')}"
    )


def main() -> None:
    """Parse arguments and run the selected benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--items", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--embeddings", choices=["random", "clustered"], default="random")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as `streamrec train` runs (see models_ml.train.deterministic)
    if not args.skip_training:
        bench_training(args.rows, args.steps)
    for n in args.items:
        bench_index(n, args.embeddings)


if __name__ == "__main__":
    main()
