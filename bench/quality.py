"""Recommendation quality against strong baselines, mean ± sd over seeds: MovieLens-100K and the demo world.

Run (from the repo root):
    .venv/bin/python bench/quality.py movielens [--seeds 2020 2021 2022] [--out results.json]
    .venv/bin/python bench/quality.py world [--seeds 7 8 9] [--interactions-per-user 100] [--out results.json]
    .venv/bin/python bench/quality.py docs --movielens ml.json --world world.json   # rewrite docs/benchmarks.md

**MovieLens-100K** follows bench/movielens_protocol.py (RecBole's protocol: per-user random 80/10/10,
full-catalogue ranking, history masked, Recall/NDCG/Hit@10); each seed is a different split and model
seed. Policies: popularity; EASE (`streamrec.models_ml.ease`, L2 chosen on valid NDCG@10); BPR-MF (RecBole's
configuration, early-stopped on valid); ALS (the `implicit` library, factors / regularisation / alpha
chosen on valid); the two-tower alone (`streamrec.models_ml.model.TwoTower`, temperature chosen on valid); and the
full pipeline: the split's training interactions loaded into a fresh warehouse as MovieLens
(`streamrec load movielens`), `streamrec build`, then the training entry point `streamrec.models_ml.train.train`,
and every user ranked by the API's own `Recommender.candidates` on the bundle it produced (whatever
candidate sources and ranker the bundle has). The protocol masks history, the API does not: the
pipeline's candidate depth is raised by the longest history so that at least 500 unseen candidates
reach the ranker, and seen items are dropped from its ranking.

**The demo world** is the synthetic world `streamrec demo` generates (2,000 users, 1,000 items, 60 days),
one world per seed (generator seed, training seed). Every policy's top-10 page for every user the bundle
knows is valued with the ground truth the world was generated from (`streamrec.lab.truth`): expected engaged
slots = Σ examination(slot) · relevance(user, item), as `streamrec simulate` values pages. The oracle is
the top 10 servable items by true relevance; the share of the oracle's lift is (policy - popularity) /
(oracle - popularity), popularity being the bundle's holdout page. Nothing is masked (the API does not
mask history; relevance does not depend on it). Baselines learn from the positives (play, complete, like)
of all of `raw.interactions`; their hyperparameters are chosen on a per-user random 10% of them
(valid NDCG@10), then refit on everything. "Served" is the API's personalised page with its exploration
and fairness re-rank (one draw per user); "full pipeline" the same bundle's ranking without them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import movielens_protocol as mlp

from streamrec.core.settings import Settings
from streamrec.models_ml.ease import ease_scores, fit_ease

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
ML_DATA = Path("/work/shared/data/ml-100k")
K = 10
EASE_L2 = (10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)
ALS_GRID = tuple((f, r, a) for f in (32, 64) for r in (0.01, 1.0, 10.0) for a in (1.0, 10.0))
RETRIEVAL_DEPTH = 500  # unseen candidates the pipeline's ranker sees (the API's retrieval_k)
POSITIVE_EVENTS = ("play", "complete", "like")
MEASURE_NAMES = ("recall@10", "ndcg@10", "hit@10")
WORLD_BPR_EPOCHS = 60


# ---------------------------------------------------------------- shared model fits (matrices of users x items)


def interaction_matrix(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """Binary users x items matrix of the (user, item) pairs."""
    x = sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)), shape=(n_users, n_items))
    x.data[:] = 1.0
    return x


def ease_model(train: sp.csr_matrix, l2: float) -> np.ndarray:
    """EASE scores (users x items) of every user from their training history."""
    return ease_scores(fit_ease(train, l2), train, exclude_seen=False)


def als_model(train: sp.csr_matrix, factors: int, regularization: float, alpha: float, seed: int) -> np.ndarray:
    """implicit's ALS (conjugate gradient, 15 iterations) fitted on the training matrix; dense user x item scores."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    model = AlternatingLeastSquares(
        factors=factors, regularization=regularization, alpha=alpha, iterations=15, random_state=seed, num_threads=1
    )
    with threadpool_limits(1, "blas"):  # implicit's advice: its own loop, not OpenBLAS's threads
        model.fit(train, show_progress=False)
    return np.asarray(model.user_factors @ model.item_factors.T, dtype=np.float32)


def choose(
    name: str, candidates: Sequence[Any], fit: Callable[[Any], np.ndarray], valid: Callable[[np.ndarray], float]
) -> tuple[Any, float]:
    """The candidate setting with the best validation score (ties: the first)."""
    best, best_score = None, -1.0
    for setting in candidates:
        score = valid(fit(setting))
        print(f"  {name} {setting}: valid ndcg@10 {score:.4f}", flush=True)
        if score > best_score:
            best, best_score = setting, score
    return best, best_score


# ---------------------------------------------------------------- MovieLens-100K


def _ml_eval(data: mlp.Data, scores: np.ndarray | torch.Tensor, parts: list[np.ndarray], truth) -> dict[str, float]:
    tensor = scores if isinstance(scores, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(scores))
    return mlp.evaluate(tensor.float(), data.mask(parts), truth)


def pipeline_scores_movielens(data: mlp.Data, seed: int, work: Path, epochs: int = 3) -> tuple[np.ndarray, str]:
    """The platform end to end on the split's training rows: load, build, train, rank with the API's Recommender.

    Returns dense (users x items) scores: the ranked unseen candidates get descending scores, every other item
    -inf (so the protocol's masking and top-10 see exactly the pipeline's ranking), and a note.
    """
    from streamrec.batch.build import build
    from streamrec.batch.migrate import init_db
    from streamrec.batch.movielens import PREFIX, load_movielens
    from streamrec.models_ml.train import train

    source = work / "ml-train"
    source.mkdir(parents=True, exist_ok=True)
    for suffix in ("user", "item"):
        shutil.copy(ML_DATA / f"{PREFIX}.{suffix}", source / f"{PREFIX}.{suffix}")
    lines = (ML_DATA / f"{PREFIX}.inter").read_text(encoding="latin-1").splitlines()
    rows = [line for line in lines[1:] if line]  # as movielens_protocol.read_atomic reads them
    kept = [lines[0]] + [line for line, keep in zip(rows, data.train, strict=True) if keep]
    (source / f"{PREFIX}.inter").write_text("\n".join(kept) + "\n", encoding="latin-1")
    settings = Settings(home=work / "home").ensure()
    os.environ["STREAMREC_HOME"] = str(settings.home)  # dbt's profile reads it
    init_db(settings)
    load_movielens(settings, source)
    build(settings, variables={"evaluation_threshold_severity": "warn"})
    version = f"ml-seed{seed}"
    trained = train(settings, epochs=epochs, seed=seed, version=version)
    print(trained, flush=True)
    history = data.mask([data.train]).numpy()
    scores, served = rank_with_bundle(settings, version, data.user_ids, data.item_ids, history)
    head = trained.split(";", 1)[0]  # the head of train's summary: what it learned from
    return scores, f"{served}; {head}"


def rank_with_bundle(
    settings: Settings, version: str, user_ids: np.ndarray, item_ids: np.ndarray, history: np.ndarray | None
) -> tuple[np.ndarray, str]:
    """Dense scores from the bundle's Recommender.candidates (no exploration, no fairness slots), -inf elsewhere.

    With `history` (users x items bool, the protocol's mask), the candidate depth is raised by the longest
    history so that at least RETRIEVAL_DEPTH unseen candidates are ranked.
    """
    from streamrec.api.config import ApiSettings
    from streamrec.api.services.fairness import ExposureTracker
    from streamrec.api.services.recommender import Recommender
    from streamrec.api.services.serving_bundle import load_serving_bundle

    bundle = load_serving_bundle(settings.artifacts_dir / version, expected_version=version)
    depth = RETRIEVAL_DEPTH + (int(history.sum(1).max()) if history is not None else 0)
    config = ApiSettings.from_env(
        {}, retrieval_k=min(depth, len(bundle.item_ids)), fairness_cap=0.0, exploration="none", seed=0
    )
    recommender = Recommender(config.with_home(settings), ExposureTracker())
    column = {int(i): c for c, i in enumerate(item_ids.tolist())}
    scores = np.full((len(user_ids), len(item_ids)), -np.inf, dtype=np.float32)
    unknown = 0
    with torch.inference_mode():
        for u, user in enumerate(user_ids.tolist()):
            row = bundle.user_row(int(user))
            if row is None:
                unknown += 1
                continue
            rows = recommender.candidates(bundle, int(user), row)[0]
            cols = np.array([column.get(int(i), -1) for i in bundle.item_ids[rows]], dtype=np.int64)
            cols = cols[cols >= 0]
            if history is not None:
                cols = cols[~history[u, cols]][:RETRIEVAL_DEPTH]
            scores[u, cols] = -np.arange(len(cols), dtype=np.float32)
    return scores, f"{len(user_ids) - unknown} users ranked, {unknown} unknown to the bundle"


ML_POLICIES = ("popularity", "ease", "bpr", "als", "two_tower", "pipeline")


def run_movielens(
    seed: int, temperatures: Sequence[float], work: Path, policies: Sequence[str] = ML_POLICIES
) -> dict[str, dict[str, float]]:
    """The chosen policies (default: all) on one RecBole split: test metrics by policy name, notes and seconds."""
    torch.set_num_threads(1)
    data = mlp.Data(ML_DATA, seed)
    valid_truth, test_truth = data.truth(data.valid), data.truth(data.test)
    train = interaction_matrix(data.users[data.train], data.items[data.train], data.n_users, data.n_items)
    out: dict[str, dict[str, Any]] = {}

    def record(name: str, scores, started: float, note: str = "") -> None:
        out[name] = _ml_eval(data, scores, [data.train, data.valid], test_truth) | {
            "seconds": time.perf_counter() - started,
            "note": note,
        }
        print(f"seed {seed} {name}: {out[name]}", flush=True)

    def valid(scores) -> float:
        return _ml_eval(data, scores, [data.train], valid_truth)["ndcg@10"]

    if "popularity" in policies:
        started = time.perf_counter()
        record("Popularity", mlp.popularity(data), started)

    if "ease" in policies:
        started = time.perf_counter()
        l2, score = choose("EASE l2", EASE_L2, lambda v: ease_model(train, v), valid)
        record("EASE", ease_model(train, l2), started, f"L2 {l2:g} (valid NDCG {score:.4f})")

    if "bpr" in policies:
        started = time.perf_counter()
        bpr, score, epochs = mlp.train_bpr(data, seed)
        record("BPR-MF", bpr, started, f"{epochs} epochs (valid NDCG {score:.4f})")

    if "als" in policies:
        started = time.perf_counter()
        setting, score = choose("ALS", ALS_GRID, lambda v: als_model(train, *v, seed), valid)
        note = f"factors/reg/alpha {setting} (valid NDCG {score:.4f})"
        record("ALS (implicit)", als_model(train, *setting, seed), started, note)

    if "two_tower" in policies:
        started = time.perf_counter()
        best = None
        for temperature in temperatures:
            scores, score, epochs = mlp.train_two_tower(data, seed, temperature)
            print(f"  two-tower T={temperature}: valid ndcg@10 {score:.4f} ({epochs} epochs)", flush=True)
            if best is None or score > best[1]:
                best = (scores, score, epochs, temperature)
        record("Two-tower alone", best[0], started, f"T={best[3]}, {best[2]} epochs (valid NDCG {best[1]:.4f})")

    if "pipeline" in policies:
        started = time.perf_counter()
        scores, note = pipeline_scores_movielens(data, seed, work / f"ml-{seed}")
        record("Full pipeline (train entry point + Recommender)", scores, started, note)
    return out


# ---------------------------------------------------------------- the demo world (ground truth)


def page_values(truth, users: np.ndarray, pages: np.ndarray) -> np.ndarray:
    """Expected engaged slots of each user's page (users x K item ids), the simulator's valuation."""
    exam = truth.examination_probability(np.arange(1, pages.shape[1] + 1, dtype=np.float64), pages.shape[1])
    relevance = truth.relevance(np.repeat(users, pages.shape[1]), pages.ravel()).reshape(pages.shape)
    return (relevance * exam[None, :]).sum(1)


def top_pages(scores: np.ndarray, item_ids: np.ndarray, k: int = K) -> np.ndarray:
    """Item ids of each row's top-k scores, best first."""
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return item_ids[np.take_along_axis(part, order, axis=1)]


def run_world(seed: int, interactions_per_user: int, work: Path, epochs: int = 3) -> dict[str, dict[str, float]]:
    """Generate the demo world with `seed`, build, train, and value every policy's pages with the truth."""
    from streamrec.api.config import ApiSettings
    from streamrec.api.services.fairness import ExposureTracker
    from streamrec.api.services.recommender import Recommender
    from streamrec.api.services.serving_bundle import load_serving_bundle
    from streamrec.batch.build import build
    from streamrec.batch.migrate import init_db
    from streamrec.core.warehouse import connect, fetchall
    from streamrec.lab.generate import generate
    from streamrec.lab.simulate import Oracle
    from streamrec.lab.truth import load_truth
    from streamrec.models_ml.train import train

    torch.set_num_threads(1)  # small models; more threads only spin against each other on a busy machine
    timings: dict[str, float] = {}
    began = time.perf_counter()
    settings = Settings(home=work / f"world-{seed}" / "home").ensure()
    os.environ["STREAMREC_HOME"] = str(settings.home)
    init_db(settings)
    generate(settings, users=2_000, items=1_000, days=60, seed=seed, interactions=2_000 * interactions_per_user)
    timings["generate"] = time.perf_counter() - began
    build(settings, variables={"evaluation_threshold_severity": "warn"})
    timings["build"] = time.perf_counter() - began - timings["generate"]
    version = f"world-seed{seed}"
    train(settings, epochs=epochs, seed=seed, version=version)
    timings["train"] = time.perf_counter() - began - timings["generate"] - timings["build"]
    with connect(settings, read_only=True) as con:
        truth = load_truth(con)
        pairs = np.array(
            fetchall(
                con,
                "select distinct user_id, item_id from raw.interactions where event_type in ('play', 'complete', "
                "'like')",
            ),
            dtype=np.int64,
        )
        n_interactions = int(fetchall(con, "select count(*) from raw.interactions")[0][0])
    bundle = load_serving_bundle(settings.artifacts_dir / version, expected_version=version)
    item_ids = np.sort(bundle.item_ids)
    users = np.array([u for u in bundle.user_ids.tolist() if np.isin(u, truth.user_ids)], dtype=np.int64)
    user_col = {int(u): i for i, u in enumerate(users.tolist())}
    item_col = {int(i): c for c, i in enumerate(item_ids.tolist())}
    keep = np.array([int(u) in user_col and int(i) in item_col for u, i in pairs], dtype=bool)
    u_idx = np.array([user_col[int(u)] for u in pairs[keep, 0]], dtype=np.int64)
    i_idx = np.array([item_col[int(i)] for i in pairs[keep, 1]], dtype=np.int64)
    full = interaction_matrix(u_idx, i_idx, len(users), len(item_ids))
    train_part, valid_part, _ = mlp.split_per_user(u_idx, i_idx, seed)  # 80/10/10: valid picks hyperparameters
    train_x = interaction_matrix(u_idx[train_part], i_idx[train_part], len(users), len(item_ids))
    valid_truth: dict[int, set[int]] = {}
    for u, i in zip(u_idx[valid_part].tolist(), i_idx[valid_part].tolist(), strict=True):
        valid_truth.setdefault(u, set()).add(i)
    train_mask = torch.from_numpy(train_x.toarray() > 0)

    def valid(scores: np.ndarray) -> float:
        return mlp.evaluate(torch.from_numpy(scores), train_mask, valid_truth)["ndcg@10"]

    pages: dict[str, np.ndarray] = {}
    notes: dict[str, str] = {}
    recommender = Recommender(ApiSettings.from_env({}, seed=seed).with_home(settings), ExposureTracker())
    popular = bundle.item_ids[recommender.popular(bundle, K, None, policy="holdout").rows]
    pages["Popularity (holdout page)"] = np.tile(popular, (len(users), 1))
    oracle = Oracle(truth)
    oracle.set_catalogue(version, bundle.item_ids)
    pages["Oracle (top 10 by true relevance)"] = np.stack([oracle.page(version, int(u), K) for u in users])

    l2, score = choose("EASE l2", EASE_L2, lambda v: ease_model(train_x, v), valid)
    pages["EASE"] = top_pages(ease_model(full, l2), item_ids)
    notes["EASE"] = f"L2 {l2:g} (valid NDCG {score:.4f})"
    setting, score = choose("ALS", ALS_GRID, lambda v: als_model(train_x, *v, seed), valid)
    pages["ALS (implicit)"] = top_pages(als_model(full, *setting, seed), item_ids)
    notes["ALS (implicit)"] = f"factors/reg/alpha {setting} (valid NDCG {score:.4f})"
    bpr_data = _WorldSplit(u_idx, i_idx, train_part, valid_part, len(users), len(item_ids))
    # early-stopped on valid (at most WORLD_BPR_EPOCHS: the bench's time budget), trained on the 80%
    bpr, _, bpr_epochs = mlp.train_bpr(bpr_data, seed, max_epochs=WORLD_BPR_EPOCHS)
    pages["BPR-MF"] = top_pages(bpr.numpy(), item_ids)
    notes["BPR-MF"] = f"{bpr_epochs} epochs, trained on the 80% split"

    two_tower, ranked, served = [], [], []
    with torch.inference_mode():
        for user in users.tolist():
            row = bundle.user_row(int(user))
            _, query = recommender.user_query(bundle, int(user), row)
            rows, _ = recommender.retrieve(bundle, query)
            two_tower.append(bundle.item_ids[rows[:K]])
            ranked.append(bundle.item_ids[recommender.candidates(bundle, int(user), row)[0][:K]])
            page = recommender.personalized(bundle, int(user), row, K)
            recommender.tracker.record(bundle.item_groups[page.rows])
            served.append(bundle.item_ids[page.rows])
    pages["Two-tower alone (FAISS top 10)"] = np.stack(two_tower)
    pages["Full pipeline (bundle ranking)"] = np.stack(ranked)
    pages["Served (pipeline + exploration + fairness)"] = np.stack(served)

    values = {name: float(page_values(truth, users, page).mean()) for name, page in pages.items()}
    base, best = values["Popularity (holdout page)"], values["Oracle (top 10 by true relevance)"]
    out = {
        name: {"engaged_slots": value, "oracle_share": (value - base) / (best - base), "note": notes.get(name, "")}
        for name, value in values.items()
    }
    out["_world"] = {
        "users": len(users),
        "items": len(item_ids),
        "interactions": n_interactions,
        "positive_pairs": int(full.nnz),
        **{f"{k}_seconds": v for k, v in timings.items()},
    }
    for name, row in out.items():
        print(f"world seed {seed} {name}: {row}", flush=True)
    return out


class _WorldSplit:
    """The attributes of movielens_protocol.Data that train_bpr reads, for the world's positives."""

    def __init__(self, users, items, train, valid, n_users, n_items) -> None:
        self.users, self.items, self.train, self.valid = users, items, train, valid
        self.n_users, self.n_items = n_users, n_items

    mask = mlp.Data.mask
    truth = mlp.Data.truth


# ---------------------------------------------------------------- summary and docs


def mean_sd(values: Sequence[float]) -> str:
    """'mean ± sd' (sample sd over seeds) to 4 decimals."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


def movielens_table(results: dict[str, dict]) -> str:
    """Markdown table of test metrics (mean ± sd over seeds) by policy."""
    seeds = sorted(results)
    names = list(results[seeds[0]])
    lines = [
        "| policy | Recall@10 | NDCG@10 | Hit@10 | selection (seed " + seeds[0] + ") |",
        "|---|---:|---:|---:|---|",
    ]
    for name in names:
        cells = [mean_sd([results[s][name][m] for s in seeds]) for m in MEASURE_NAMES]
        lines.append(f"| {name} | {' | '.join(cells)} | {results[seeds[0]][name]['note']} |")
    return "\n".join(lines)


def world_table(results: dict[str, dict]) -> str:
    """Markdown table of expected engaged slots per page and oracle share (mean ± sd over worlds)."""
    seeds = sorted(results)
    names = [n for n in results[seeds[0]] if not n.startswith("_")]
    lines = ["| policy | engaged slots / page | share of the oracle's lift |", "|---|---:|---:|"]
    for name in names:
        slots = mean_sd([results[s][name]["engaged_slots"] for s in seeds])
        share = [results[s][name]["oracle_share"] for s in seeds]
        sd = statistics.stdev(share) if len(share) > 1 else 0.0
        lines.append(f"| {name} | {slots} | {statistics.mean(share):.1%} ± {sd:.1%} |")
    return "\n".join(lines)


PIPELINE = "Full pipeline (train entry point + Recommender)"
WORLD_SERVED = "Served (pipeline + exploration + fairness)"


def goals(movielens: dict[str, dict] | None, world: dict[str, dict] | None) -> list[str]:
    """The issue-12 quality goals this benchmark can judge, each marked MET or MISSED from the means."""
    lines = []
    if movielens:
        seeds = sorted(movielens)
        for metric in MEASURE_NAMES:
            ours = statistics.mean(movielens[s][PIPELINE][metric] for s in seeds)
            ease = statistics.mean(movielens[s]["EASE"][metric] for s in seeds)
            verdict = "MET" if ours > ease else "MISSED"
            lines.append(
                f"- MovieLens-100K, full pipeline beats EASE on {metric}: {ours:.4f} vs {ease:.4f}: **{verdict}**"
            )
    if world:
        seeds = sorted(world)
        served = statistics.mean(world[s][WORLD_SERVED]["oracle_share"] for s in seeds)
        ease = statistics.mean(world[s]["EASE"]["oracle_share"] for s in seeds)
        lines.append(
            f"- Demo world, served policy captures >= 15% of the oracle's lift: {served:.1%}: "
            f"**{'MET' if served >= 0.15 else 'MISSED'}**"
        )
        lines.append(
            f"- Demo world, served share >= 2x EASE's ({ease:.1%}): {served:.1%}: "
            f"**{'MET' if (ease > 0 and served >= 2 * ease) or ease <= 0 < served else 'MISSED'}**"
        )
    return lines


def render_docs(movielens: dict[str, dict] | None, world: dict[str, dict] | None, note: str) -> str:
    """The <!-- quality --> section of docs/benchmarks.md from saved results."""
    parts = ["<!-- quality:start -->", "## Recommendation quality against strong baselines (issue 12)", ""]
    if movielens:
        parts += [
            "### MovieLens-100K (RecBole protocol), mean ± sd over seeds " + ", ".join(sorted(movielens)),
            "",
            "Command: `.venv/bin/python bench/quality.py movielens --seeds " + " ".join(sorted(movielens)) + "`",
            "",
            movielens_table(movielens),
            "",
        ]
    if world:
        info = world[sorted(world)[0]]["_world"]
        parts += [
            "### Demo world, valued by the ground truth, mean ± sd over worlds " + ", ".join(sorted(world)),
            "",
            f"Command: `.venv/bin/python bench/quality.py world --seeds {' '.join(sorted(world))}` "
            f"({info['users']:,} users, {info['items']:,} items, {info['interactions']:,} interactions in world "
            f"{sorted(world)[0]}, {info['positive_pairs']:,} positive user-item pairs)",
            "",
            world_table(world),
            "",
        ]
    parts += ["### Goals", "", *goals(movielens, world), "", note, "<!-- quality:end -->"]
    return "\n".join(parts)


def write_docs(section: str) -> None:
    """Replace (or append) the quality section of docs/benchmarks.md."""
    text = DOCS.read_text()
    start, end = "<!-- quality:start -->", "<!-- quality:end -->"
    if start in text:
        text = text[: text.index(start)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOCS.write_text(text)


def main() -> None:
    """CLI: run one part and save its JSON, or render saved JSON into docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="part", required=True)
    ml = sub.add_parser("movielens")
    ml.add_argument("--seeds", type=int, nargs="+", default=[2020, 2021, 2022])
    ml.add_argument("--temperatures", type=float, nargs="+", default=[0.1])  # 0.05 lost on valid (seed 2020)
    ml.add_argument("--out", type=Path, default=Path("quality-movielens.json"))
    ml.add_argument("--policies", nargs="+", choices=ML_POLICIES, default=list(ML_POLICIES))
    world = sub.add_parser("world")
    world.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    world.add_argument("--interactions-per-user", type=int, default=None)
    world.add_argument("--out", type=Path, default=Path("quality-world.json"))
    docs = sub.add_parser("docs", help="rewrite the quality section of docs/benchmarks.md from saved results")
    docs.add_argument("--movielens", type=Path)
    docs.add_argument("--world", type=Path)
    docs.add_argument("--note", default="", help="a paragraph placed under the goals")
    args = parser.parse_args()
    if args.part == "docs":
        loaded = [json.loads(p.read_text()) if p else None for p in (args.movielens, args.world)]
        write_docs(render_docs(*loaded, args.note))
        print(f"rewrote the quality section of {DOCS}")
        return
    work = Path(tempfile.mkdtemp(prefix="streamrec-quality-"))
    try:
        results: dict[str, dict] = {}
        for seed in args.seeds:  # saved after every seed: a long run that is stopped keeps what it finished
            if args.part == "movielens":
                results[str(seed)] = run_movielens(seed, args.temperatures, work, args.policies)
            else:
                from streamrec.lab.demo import DEMO_INTERACTIONS_PER_USER

                per_user = args.interactions_per_user or DEMO_INTERACTIONS_PER_USER
                results[str(seed)] = run_world(seed, per_user, work)
            args.out.write_text(json.dumps(results, indent=1, default=float))
        print(movielens_table(results) if args.part == "movielens" else world_table(results))
        print(f"results: {args.out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
