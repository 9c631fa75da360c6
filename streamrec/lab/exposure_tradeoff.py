"""The cost of amortized exposure control, measured in process: one point of the trade-off curve per reserve cap.

For a cap (share of a page's slots the controller may reserve, 0 = no control) the active bundle serves a
fixed sequence of simulated requests exactly as the API would: users drawn uniformly from `raw.users` (as
`streamrec simulate` draws them), the API's `Recommender` with its default exploration, a fresh exposure
tracker fed with every served personalised page. Each point has the worst-group equity (the SQL metric's
judged-group rule, on the bundle's item snapshot), the share of catalogue creators never shown, NDCG@10
and Hit@10 of the greedy page for requests of held-out users, and the simulator's true engagement
(expected engaged slots per page under the generator's behaviour model). `bench/fairness.py` runs the
curve and writes docs/benchmarks.md; `streamrec demo` runs a short one; `streamrec report` plots it.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np

from streamrec.api.services.serving_bundle import ActivePointer

TRADEOFF_FILE = "fairness_tradeoff.json"  # under $STREAMREC_HOME/reports, what `streamrec report` plots
Z_ALPHA, Z_BETA = 1.959964, 0.841621
EQUITY_THRESHOLD = 0.6
WARM_UP = 50  # untimed requests before each cap's clock starts


def _active(home: Path) -> ActivePointer:
    """The promoted bundle's pointer; a home without one is an error naming the command to run."""
    from streamrec.api.services.serving_bundle import read_active
    from streamrec.core.errors import StreamRecError

    pointer = read_active(home / "artifacts")
    if pointer is None:
        raise StreamRecError(f"nothing promoted in {home}: run `streamrec demo` (or train and promote) first")
    return pointer


def slots_needed(catalogue_share: np.ndarray, threshold: float) -> np.ndarray:
    """The SQL metric's per-group n: tell share p0 from threshold·p0 at 5% two-sided, 80% power."""
    p0 = catalogue_share
    p1 = threshold * p0
    with np.errstate(divide="ignore", invalid="ignore"):
        n = (Z_ALPHA * np.sqrt(p0 * (1 - p0)) + Z_BETA * np.sqrt(p1 * (1 - p1))) ** 2 / (p0 - p1) ** 2
    return np.ceil(np.nan_to_num(n, nan=np.inf))


def worst_equity(exposure: np.ndarray, slots: int, catalogue_sizes: np.ndarray) -> tuple[float | None, str]:
    """(min over dimensions of equity over judged groups, the worst dimension) from exposure per group."""
    from streamrec.api.services.fairness import DIMENSION_GROUPS

    worst: tuple[float | None, str] = (None, "")
    for dimension, members in DIMENSION_GROUPS.items():
        size = int(members.max()) + 1
        exposed = np.bincount(members, weights=exposure, minlength=size)
        catalogue = np.bincount(members, weights=catalogue_sizes.astype(float), minlength=size)
        share = catalogue / catalogue.sum()
        present = share > 0
        judged = present & (slots >= slots_needed(np.where(present, share, 0.5), EQUITY_THRESHOLD))
        if judged.sum() < 2 or exposed.sum() <= 0:
            continue
        normalised = exposed[judged] / exposed.sum() / share[judged]
        equity = float(normalised.min() / normalised.max())
        if worst[0] is None or equity < worst[0]:
            worst = (equity, dimension)
    return worst


def run_cap(home: Path, cap: float, requests: int, targets: str, seed: int, price: float | None = None) -> dict:
    """Serve `requests` simulated requests in process with the controller capped at `cap`; the curve's point."""
    from streamrec.api.config import ApiSettings
    from streamrec.api.services.fairness import ExposureTracker, position_weights
    from streamrec.api.services.recommender import Recommender
    from streamrec.api.services.serving_bundle import load_serving_bundle
    from streamrec.core.settings import Settings
    from streamrec.core.warehouse import connect, fetchall
    from streamrec.lab.truth import load_truth

    pointer = _active(home)
    bundle = load_serving_bundle(pointer.bundle_dir)
    with connect(Settings(home=home), read_only=True) as con:
        truth = load_truth(con)
        users = np.array([r[0] for r in fetchall(con, "select user_id from raw.users order by user_id")], np.int64)
        holdout_rows = fetchall(
            con, "select user_id, item_id from ops.offline_holdout where version = ?", [bundle.version]
        )
    users = users[np.isin(users, truth.user_ids)]
    positives: dict[int, set[int]] = {}
    for user, item in holdout_rows:
        positives.setdefault(int(user), set()).add(int(item))
    env = {"STREAMREC_HOME": str(home), "STREAMREC_HOLDOUT_SHARE": "0", "STREAMREC_SEED": str(seed)}
    if targets:
        env["STREAMREC_FAIRNESS_TARGETS"] = targets
    overrides: dict[str, float] = (
        {"fairness_cap": cap} if price is None else {"fairness_cap": cap, "fairness_price": price}
    )
    config = ApiSettings.from_env(env, **overrides)
    tracker = ExposureTracker()
    recommender = Recommender(config, tracker)
    k = 10
    discounts = position_weights(k)
    rng = np.random.default_rng(seed)
    shown_creators: set[int] = set()
    ndcg, hit, engaged = [], [], []
    slots = 0
    reserved_slots = 0
    draws = rng.choice(users, size=requests).tolist()
    # warm-up, untimed and without state: the first cap would otherwise also pay torch's and numpy's first calls
    for user in draws[:WARM_UP]:
        if (row := bundle.user_row(user)) is not None:
            recommender.rerank(bundle, *recommender.candidates(bundle, user, row), k)
    seconds = 0.0  # what the API does per request (candidates, page, record), not this bench's own measuring
    for user in draws:
        row = bundle.user_row(user)
        if row is None:
            continue
        started = time.perf_counter()
        ranked_rows, ranked_scores = recommender.candidates(bundle, user, row)
        seconds += time.perf_counter() - started
        page_positions, reserved = recommender.rerank(bundle, ranked_rows, ranked_scores, k)
        reserved_slots += int(reserved.sum())
        relevant = positives.get(user)
        if relevant:
            greedy = bundle.item_ids[ranked_rows[page_positions]].tolist()
            gains = np.array([item in relevant for item in greedy], dtype=float)
            ideal = discounts[: min(len(relevant), k)].sum()
            ndcg.append(float((gains * discounts[: len(gains)]).sum() / ideal))
            hit.append(float(gains.any()))
        started = time.perf_counter()
        page = recommender.page(bundle, ranked_rows, ranked_scores, k)
        recommender.record_served(bundle, page)
        seconds += time.perf_counter() - started
        item_ids = bundle.item_ids[page.rows]
        shown_creators.update(bundle.item_creator_ids[page.rows].tolist())
        relevance = truth.relevance(np.full(len(item_ids), user, dtype=np.int64), item_ids)
        positions = np.arange(1, len(item_ids) + 1, dtype=np.float64)
        engaged.append(float((truth.examination_probability(positions, len(item_ids)) * relevance).sum()))
        slots += len(item_ids)
    equity, dimension = worst_equity(tracker.exposure(bundle.version), slots, bundle.group_sizes)
    creators = set(bundle.item_creator_ids.tolist())
    return {
        "cap": cap,
        "cap_slots": math.floor(cap * k + 1e-9),
        "requests": len(engaged),
        "slots": slots,
        "reserved_share": reserved_slots / max(slots, 1),
        "worst_equity": equity,
        "worst_dimension": dimension,
        "creators": len(creators),
        "creators_never_shown_share": 1.0 - len(shown_creators & creators) / max(len(creators), 1),
        "heldout_pages": len(ndcg),
        "ndcg_at_10": float(np.mean(ndcg)) if ndcg else None,
        # per request, in request order (the same requests at every cap): relative() pairs them, then drops them
        "_per_request": {"ndcg_at_10": ndcg, "hit_at_10": hit, "true_engaged_per_page": engaged},
        "hit_at_10": float(np.mean(hit)) if hit else None,
        "true_engaged_per_page": float(np.mean(engaged)) if engaged else None,
        "ms_per_request": seconds * 1000 / max(len(engaged), 1),
    }


def relative(points: list[dict], replicates: int = 2000, seed: int = 0) -> list[dict]:
    """Add each point's NDCG@10, Hit@10 and true engagement relative to cap 0 (the first point if no cap 0).

    Every cap serves the same requests (same user draws, same exploration seeds), so each relative figure
    gets a paired 95% bootstrap interval over requests (`<name>_vs_no_control_ci`): a few hundred held-out
    pages with NDCG@10 near 0.04 move the point estimate by several percent, and a cost goal is judged on
    the interval as the scorecard is. The per-request lists are dropped from the points afterwards.
    """
    base = next((p for p in points if p["cap"] == 0), points[0])
    rng = np.random.default_rng(seed)
    draws: dict[int, np.ndarray] = {}
    for point in points:
        for name in ("ndcg_at_10", "hit_at_10", "true_engaged_per_page"):
            point[f"{name}_vs_no_control"] = (
                point[name] / base[name] - 1.0 if point[name] is not None and base[name] else None
            )
            ours = np.asarray(point.get("_per_request", {}).get(name, []), dtype=np.float64)
            theirs = np.asarray(base.get("_per_request", {}).get(name, []), dtype=np.float64)
            interval = None
            if len(ours) and len(ours) == len(theirs) and theirs.sum() > 0:
                sample = draws.setdefault(len(ours), rng.integers(0, len(ours), size=(replicates, len(ours))))
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratios = ours[sample].mean(axis=1) / theirs[sample].mean(axis=1) - 1.0
                low, high = np.quantile(ratios[np.isfinite(ratios)], [0.025, 0.975])
                interval = [float(low), float(high)]
            point[f"{name}_vs_no_control_ci"] = interval
    for point in points:
        point.pop("_per_request", None)
    return points


def run_curve(
    home: Path, caps: list[float], requests: int, targets: str = "", seed: int = 11, price: float | None = None
) -> list[dict]:
    """Every cap's point, NDCG@10 / Hit@10 / true engagement relative to cap 0 (or the first cap)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return relative([run_cap(home, cap, requests, targets, seed, price) for cap in caps])
    finally:
        torch.set_num_threads(threads)


def write_curve(home: Path, points: list[dict], command: str, targets: str, out: Path | None = None) -> Path:
    """Store the curve (atomically) where `streamrec report` looks for it; returns the path."""
    version = _active(home).version
    result = {"version": version, "command": command, "targets": targets or "0.6", "points": points}
    out = out or home / "reports" / TRADEOFF_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, out)
    return out
