"""Synthetic unit-norm embeddings for index benchmarks and synthetic bundles: clustered (like trained towers) or random.

`clustered_unit_vectors` draws a Gaussian mixture on the unit sphere: `n_centres` centre directions
uniform on the sphere, each vector = its centre + isotropic Gaussian noise whose expected norm is
`spread`, renormalised. Two vectors of the same cluster are then about `spread / sqrt(1 + spread²)`
times as far apart as two vectors of different clusters (√2 apart on average in 128-d).

Why spread 0.6: the item embeddings of a trained demo bundle (`streamrec generate --users 2000
--items 1000 && streamrec build && streamrec train`) have their 10th nearest neighbour at 0.52 x the
median pairwise distance (1st: 0.33, 100th: 0.74); spread 0.6 puts cluster-mates at 0.51 x the
between-cluster distance. Trained embeddings are even more structured than this mixture (they sit
in a narrow cone, mean pairwise cosine 0.95, and their neighbour counts grow like a ~6-dimensional
set), so the mixture is the harder, conservative case for approximate search. 2,000 centres give
500 items per cluster at 1M items: the top-500 of a query spans a few clusters.
"""

from __future__ import annotations

import numpy as np

N_CENTRES = 2_000
SPREAD = 0.6


def random_unit_vectors(n: int, dim: int = 128, seed: int = 0) -> np.ndarray:
    """Isotropic unit vectors: no structure at all, the worst case for approximate search."""
    x = np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered_unit_vectors(
    n: int,
    dim: int = 128,
    *,
    n_centres: int = N_CENTRES,
    spread: float = SPREAD,
    centre_seed: int = 0,
    seed: int = 0,
) -> np.ndarray:
    """`n` unit vectors from the mixture whose centres `centre_seed` fixes (same seed = same clusters).

    Draw items and queries with the same `centre_seed` and different `seed`s so queries land in the
    items' clusters, as user embeddings land near the items they like. Built in chunks to bound memory.
    """
    centres = random_unit_vectors(n_centres, dim, centre_seed)
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 262_144):
        m = min(262_144, n - start)
        x = centres[rng.integers(0, n_centres, m)]
        x += rng.standard_normal((m, dim), dtype=np.float32) * np.float32(spread / np.sqrt(dim))
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out
