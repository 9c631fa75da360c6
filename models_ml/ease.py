"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): a closed-form item-item model.

With X the user-item interaction matrix and λ the L2 weight, EASE's weights are

    P = (XᵀX + λI)⁻¹,    B_ij = -P_ij / P_jj  (i ≠ j),    B_jj = 0,

and a user's scores are x_u · B. The fit is one dense symmetric inverse, so its cost grows with the
catalogue: memory ~12·n² bytes for the two dense matrices (the float64 Gram matrix inverted in place,
plus the float32 B; the sparse product before it adds more on dense data), time ~n³ flops (Cholesky
factorisation + inverse). `MAX_EASE_ITEMS` is the largest catalogue we fit on this project's reference
machine (2 cores, 24 GiB shared with other jobs); `check_ease_size` refuses anything above it with a
one-line message instead of swapping or running for an hour.

Measured with `python -m streamrec.models_ml.ease --sizes 2000 5000 10000 15000` (docs/benchmarks.md, "EASE fit
cost"): the fit time grows as n³ and the peak memory with n²; MAX_EASE_ITEMS's comment has the figures.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from streamrec.core.errors import StreamRecError

# Measured on the reference machine (2 cores, shared: load average ~8 from other jobs while measured) with
# `python -m streamrec.models_ml.ease --sizes 2000 5000 10000 15000`, 20,000 users * 50 interactions each,
# a fresh process per size:
#   2,000 items 1.7 s 0.23 GiB; 5,000 items 6.3 s 0.72 GiB; 10,000 items 125 s 2.25 GiB;
#   15,000 items 266 s 4.72 GiB peak resident.
# Time grows as n³ (Cholesky + inverse) and memory with n² (~21 bytes per item pair at 15,000), so 20,000 items
# would cost ~10 minutes and ~8.4 GiB, 30,000 ~35 minutes and ~19 GiB (most of the machine). 15,000 keeps a fit
# within a training job's budget (minutes, a fifth of the memory); above it the other candidate sources serve.
MAX_EASE_ITEMS = 15_000
PEAK_BYTES_PER_ITEM_SQUARED = 12  # float64 Gram matrix (8) + float32 weights (4)
_BLOCK = 1024  # columns normalised at a time (bounds the temporary copies to n x 1024)


def check_ease_size(n_items: int) -> None:
    """Raise a one-line StreamRecError if a catalogue of `n_items` is too large to fit EASE here."""
    if n_items > MAX_EASE_ITEMS:
        gib = PEAK_BYTES_PER_ITEM_SQUARED * n_items**2 / 2**30
        raise StreamRecError(
            f"EASE cannot fit {n_items:,} items: its dense itemxitem inverse needs ~{gib:,.0f} GiB and "
            f"~n³ time; the limit is MAX_EASE_ITEMS={MAX_EASE_ITEMS:,} (use the two-tower or item-to-item sources)"
        )


def fit_ease(interactions: sp.csr_matrix, l2: float) -> np.ndarray:
    """Fit EASE on a usersxitems 0/1 (or weighted) matrix: the dense itemxitem B, float32, zero diagonal.

    B[i, j] is how much having item i raises item j's score; score a user with `ease_scores`.
    """
    if l2 <= 0:
        raise StreamRecError(f"EASE L2 weight must be > 0 (got {l2}): without it XᵀX is singular")
    x = sp.csr_matrix(interactions, dtype=np.float64)
    n = x.shape[1]
    check_ease_size(n)
    gram = (x.T @ x).toarray()  # dense float64, C-ordered, symmetric
    gram[np.diag_indices(n)] += l2
    # The matrix is symmetric, so its transpose (a Fortran-ordered view of the same memory) is itself:
    # LAPACK then factorises and inverts it in place without a copy. potrf/potri fill the upper triangle
    # of that Fortran view, which is the lower triangle of `gram` as seen in C order.
    (potrf, potri) = lapack.get_lapack_funcs(("potrf", "potri"), (gram,))
    fortran = gram.T
    chol, info = potrf(fortran, lower=0, overwrite_a=1, clean=0)
    if info != 0:
        raise StreamRecError(f"EASE fit failed: XᵀX + {l2}·I is not positive definite (LAPACK potrf info={info})")
    inv, info = potri(chol, lower=0, overwrite_c=1)
    if info != 0:
        raise StreamRecError(f"EASE fit failed: inverse not computed (LAPACK potri info={info})")
    lower = inv.T  # C-ordered view again: the valid half is lower[i, j] for i >= j
    diag = np.diag(lower).copy()
    b = np.empty((n, n), dtype=np.float32)
    rows = np.arange(n)[:, None]
    for j0 in range(0, n, _BLOCK):
        j1 = min(n, j0 + _BLOCK)
        block = lower[:, j0:j1].copy()  # valid where row >= column
        upper = rows < np.arange(j0, j1)[None, :]
        block[upper] = lower[j0:j1, :].T[upper]  # P[i, j] = P[j, i] for i < j
        b[:, j0:j1] = -block / diag[j0:j1]
    b[np.diag_indices(n)] = 0.0
    return b


def ease_scores(weights: np.ndarray, history: sp.csr_matrix, exclude_seen: bool = True) -> np.ndarray:
    """Scores (users x items, float32) of each history row under EASE weights; seen items get -inf."""
    scores = np.asarray(sp.csr_matrix(history, dtype=np.float32) @ weights, dtype=np.float32)
    if exclude_seen:
        coo = sp.coo_matrix(history)
        scores[coo.row, coo.col] = -np.inf
    return scores


def ease_top_k(
    weights: np.ndarray, history: sp.csr_matrix, k: int, exclude_seen: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The top-k item ids and scores per history row, best first (ids int64, scores float32)."""
    scores = ease_scores(weights, history, exclude_seen)
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1).astype(np.int64), np.take_along_axis(part_scores, order, axis=1)


def _measure(n_items: int, n_users: int, per_user: int, seed: int) -> tuple[float, float]:
    """Fit EASE on a random usersxn_items matrix; return (seconds, peak resident GiB of this process)."""
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n_users), per_user)
    cols = rng.zipf(1.3, size=rows.size) % n_items  # a long-tailed catalogue, like real interactions
    x = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n_users, n_items))
    x.data[:] = 1.0
    start = time.perf_counter()
    fit_ease(x, 200.0)
    seconds = time.perf_counter() - start
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    """Time the fit at growing catalogue sizes (each size in a fresh process for a clean peak-memory figure)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000, 10000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        seconds, gib = _measure(args.one, n_users=20_000, per_user=50, seed=0)
        print(f"{args.one}\t{seconds:.1f}\t{gib:.2f}")
        return
    import subprocess
    import sys

    print("items\tfit_s\tpeak_GiB")
    for n in args.sizes:
        subprocess.run([sys.executable, "-m", "streamrec.models_ml.ease", "--one", str(n)], check=True)


if __name__ == "__main__":
    main()
