"""EASE closed form against hand-computed 4x4 cases, its scoring helpers and its size limit."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from streamrec.core.errors import StreamRecError
from streamrec.models_ml.ease import MAX_EASE_ITEMS, check_ease_size, ease_scores, ease_top_k, fit_ease


def _matrix(rows: list[list[int]], n_items: int = 4) -> sp.csr_matrix:
    r = [u for u, items in enumerate(rows) for _ in items]
    c = [i for items in rows for i in items]
    return sp.csr_matrix((np.ones(len(c)), (r, c)), shape=(len(rows), n_items))


def test_two_blocks_by_hand() -> None:
    # Users {0,1}, {0}, {2,3}; λ = 1. Items 0,1: XᵀX + I = [[3,1],[1,2]], inverse [[2,-1],[-1,3]]/5, so
    # B01 = -P01/P11 = (1/5)/(3/5) = 1/3 and B10 = -P10/P00 = (1/5)/(2/5) = 1/2 (item 1 always comes with 0,
    # so having 1 predicts 0 more strongly than the reverse). Items 2,3: [[2,1],[1,2]]⁻¹ = [[2,-1],[-1,2]]/3,
    # B23 = B32 = 1/2. No co-occurrence across the blocks: zero.
    b = fit_ease(_matrix([[0, 1], [0], [2, 3]]), l2=1.0)
    expected = np.array(
        [[0, 1 / 3, 0, 0], [1 / 2, 0, 0, 0], [0, 0, 0, 1 / 2], [0, 0, 1 / 2, 0]],
        dtype=np.float32,
    )
    assert b.dtype == np.float32 and b.shape == (4, 4)
    np.testing.assert_allclose(b, expected, atol=1e-6)


def test_four_cycle_by_hand() -> None:
    # Users {0,1}, {1,2}, {2,3}, {3,0}; λ = 1: XᵀX + I is the circulant (3, 1, 0, 1). Its inverse is the
    # circulant (a, b, c, b) with 3a + 2b = 1, a + 3b + c = 0, 2b + 3c = 0: a = 7/15, b = -1/5, c = 2/15.
    # So B = -P / diag(P): neighbours (1/5)/(7/15) = 3/7, the opposite item -(2/15)/(7/15) = -2/7.
    b = fit_ease(_matrix([[0, 1], [1, 2], [2, 3], [3, 0]]), l2=1.0)
    n, o = 3 / 7, -2 / 7
    expected = np.array([[0, n, o, n], [n, 0, n, o], [o, n, 0, n], [n, o, n, 0]], dtype=np.float32)
    np.testing.assert_allclose(b, expected, atol=1e-6)


def test_matches_dense_inverse_on_a_random_matrix_larger_than_one_block() -> None:
    # 1,500 items: more than one normalisation block, so the triangle mirroring across blocks is exercised.
    rng = np.random.default_rng(3)
    x = sp.random(3000, 1500, density=0.01, random_state=rng, format="csr")
    x.data[:] = 1.0
    b = fit_ease(x, l2=5.0)
    p = np.linalg.inv((x.T @ x).toarray() + 5.0 * np.eye(1500))
    expected = -p / np.diag(p)[None, :]
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(b, expected, rtol=1e-4, atol=1e-6)


def test_scores_exclude_seen_items_and_top_k_is_sorted() -> None:
    b = fit_ease(_matrix([[0, 1], [0], [2, 3]]), l2=1.0)
    history = _matrix([[0], [1, 2]])
    scores = ease_scores(b, history)
    assert scores[0, 0] == -np.inf and scores[1, 1] == -np.inf and scores[1, 2] == -np.inf
    assert scores[0, 1] == pytest.approx(1 / 3) and scores[1, 0] == pytest.approx(1 / 2)
    assert scores[1, 3] == pytest.approx(1 / 2)
    ids, top = ease_top_k(b, history, k=2)
    assert ids[0, 0] == 1 and ids[1].tolist() in ([0, 3], [3, 0])
    assert (np.diff(top, axis=1) <= 0).all()
    assert np.isfinite(ease_scores(b, history, exclude_seen=False)).all()


def test_size_limit_is_a_one_line_error() -> None:
    check_ease_size(MAX_EASE_ITEMS)  # at the limit: allowed
    with pytest.raises(StreamRecError, match="MAX_EASE_ITEMS") as excinfo:
        check_ease_size(MAX_EASE_ITEMS + 1)
    assert "\n" not in str(excinfo.value)
    with pytest.raises(StreamRecError, match="EASE cannot fit"):
        fit_ease(sp.csr_matrix((1, MAX_EASE_ITEMS + 1)), l2=1.0)  # refused before any dense allocation


def test_l2_must_be_positive() -> None:
    with pytest.raises(StreamRecError, match="L2 weight must be > 0"):
        fit_ease(_matrix([[0, 1]]), l2=0.0)
