"""`streamrec train`: two-tower retrieval -> item embeddings -> FAISS index -> ranker -> bundle -> registry.

Run: `STREAMREC_HOME=... streamrec train --epochs 3 --seed 7` after `streamrec build`.
Reads the warehouse read-only (by column name, validated against the contract), trains with a
fixed seed (deterministic), writes every bundle file into a staging directory, writes the manifest
last, moves the directory into place, writes the offline evaluation rows and registers the
version. It never promotes: `streamrec promote VERSION` does that.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as dt
import json
import os
import random
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from torch import Tensor

from streamrec.contracts.schema import Feature, FeatureContract, load_contract
from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect, table_exists
from streamrec.models_ml.bundle import EMBEDDINGS_FILE, INDEX_FILE, ITEM_IDS_FILE, ONLINE_ITEM_FILE
from streamrec.models_ml.data import TrainingData, load_training_data
from streamrec.models_ml.index import IndexInfo, build_index
from streamrec.models_ml.model import TwoTower, TwoTowerConfig, feature_to_dict, in_batch_softmax_loss, save_two_tower
from streamrec.models_ml.offline import OfflineResult, embed, recommend_offline, write_offline
from streamrec.models_ml.ranker import TWO_TOWER_SCORE, Ranker, bce_loss, make_ranker, save_ranker
from streamrec.models_ml.sources import (
    EASE_SCORE,
    EASE_WEIGHTS_FILE,
    NEIGHBOURS_FILE,
    RECENT_ITEMS_FILE,
    SOURCE_FEATURES,
    TWO_TOWER_RANK,
    USER_HISTORY_FILE,
    SourceSizes,
    catalogue_rows,
)
from streamrec.models_ml.tensors import take_rows, to_tensors

VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass
class TrainConfig:
    """Optimisation settings of both models."""

    batch_size: int = 512  # two-tower batch = number of in-batch negatives + 1
    lr: float = 3e-3  # Adam learning rate of the two-tower model
    weight_decay: float = 1e-6  # Adam weight decay
    ranker_batch_size: int = 1024
    ranker_lr: float = 2e-3
    # Drawn negatives per positive, from each candidate source's own top `negative_depth` at the row's as_of
    # (uniform: the catalogue). Off by default, logged skips are the ranker's negatives: on the demo world
    # (docs/benchmarks.md, "Ranker negatives") every drawn-negative mix we measured lowered the true
    # engagement of the ranked page, even at loss weight 0.1, because an item never shown is not evidence
    # of low relevance; `streamrec train --tune` searches these counts and their weight on validation.
    ranker_negatives: int = 0  # uniform catalogue negatives
    hard_negatives: int = 0  # from the two-tower's list
    neighbour_negatives: int = 0  # from the item-to-item source's list
    popularity_negatives: int = 0  # from the popularity source's list
    negative_depth: int = 100  # how deep in each source's list hard negatives are drawn
    two_tower_k: int = 500  # candidates from the two-tower (FAISS) source
    neighbours_k: int = 100  # candidates from the item-to-item source
    popularity_k: int = 50  # candidates from the popularity source
    ease_k: int = 100  # candidates from the EASE source (0: none; catalogues above MAX_EASE_ITEMS have none)
    ease_negatives: int = 0  # per positive, from the EASE source's top `negative_depth`
    ease_l2: float = 100.0  # EASE's L2 weight (the one chosen on validation when `ease_l2_grid` is set)
    # EASE's L2 is chosen from this grid by NDCG@10 on a per-user random `validation_share` of the positives
    # before the split (models_ml.blend.choose_ease_l2); empty: `ease_l2` as given.
    ease_l2_grid: tuple[float, ...] = (50.0, 100.0, 200.0, 500.0, 1000.0)
    validation_share: float = 0.1
    # When to choose it: "one_class" (default) only when the ranker's rows will have one class (no logged skips,
    # no drawn negatives), where the EASE score is the ranking itself; "always"; "never". With logged skips the
    # MLP ranker weighs EASE against popularity itself, and a positives-only validation rewards the logging
    # policy's exposure: on the demo world it chose L2 1000 and the served share of the oracle's lift fell from
    # 16.7% to 8.2% (docs/benchmarks.md, "EASE's L2 and the blend chosen on validation").
    ease_l2_validation: str = "one_class"
    # A pass-through ranker (training rows of one class) adds the other sources' inputs to the EASE score with
    # weights chosen on the holdout (models_ml.blend.choose_blend); off: the EASE score alone.
    blend_sources: bool = True
    # ... but only on at least this many held-out users: on fewer the grid fits their noise (MovieLens-100K's
    # 7-day holdout has 40 users; a blend chosen on them lost 30% NDCG@10 on the test split, docs/benchmarks.md)
    blend_min_users: int = 200
    watch_weight: float = 0.2  # positive weight = 1 + watch_weight * watch seconds / mean watch seconds of plays
    drawn_negative_weight: float = 1.0  # loss weight of a negative drawn from a source (a logged skip weighs 1)
    # Id embeddings with sparse gradients (SparseAdam, no weight decay on them): an Adam step then touches only
    # the rows in the batch, not the whole user table; at 1M users that is 18x less time per step
    # (docs/benchmarks.md, "Training speed").
    sparse_ids: bool = True
    # Two-tower training processes (torch.distributed, gloo): each takes its own batches of `batch_size`
    # and their gradients are averaged, so one step sees nproc x batch_size rows (models_ml.distributed).
    nproc: int = 1
    # Intra-op threads of each training process: 1 on a shared machine; on an idle 2-core machine 2 threads
    # cut a two-tower step by a third (docs/benchmarks.md, "Training time at 10M interactions").
    threads: int = 1
    # Whether the ranker reads the two-tower's score and rank. Off: on its own training rows the two-tower has
    # seen every positive, so its score separates them better than it separates anything at serving (demo
    # world: play-vs-skip AUC 0.588 on training rows, 0.537 on the holdout window's) and a ranker fed that
    # score over-trusts it; without it the ranked page captured 21.8% of the oracle's lift instead of 13.3%
    # (docs/benchmarks.md, "Ranker inputs"). The two-tower still proposes the candidates.
    ranker_two_tower_inputs: bool = False
    holdout_days: int = 7  # last days held out for offline evaluation
    refit: bool = True  # after the offline evaluation, refit the served models on all history up to the latest as_of

    def source_sizes(self) -> SourceSizes:
        """How many candidates each source proposes (recorded in the manifest, read by serving)."""
        return SourceSizes(
            two_tower=self.two_tower_k, neighbours=self.neighbours_k, popularity=self.popularity_k, ease=self.ease_k
        )


def train_config_from_checkpoint(path: Path) -> TrainConfig:
    """The TrainConfig a bundle checkpoint (retrieval.pt or ranker.pt) was trained with."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    stored = checkpoint.get("train_config")
    if not stored:
        raise StreamRecError(f"{path}: checkpoint has no train_config (written before it was stored)")
    return TrainConfig(**stored)


def default_version() -> str:
    """`v` + UTC timestamp, e.g. v20260101-120000."""
    return "v" + dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")


@contextlib.contextmanager
def deterministic(seed: int, threads: int = 1) -> Iterator[None]:
    """Seed every RNG, use `threads` torch threads and deterministic kernels; restores the previous settings."""
    previous = torch.are_deterministic_algorithms_enabled()
    previous_threads = torch.get_num_threads()
    # One intra-op thread by default: on a busy machine OpenMP spin-waiting made epochs 50x slower. On an
    # idle one more threads pay (TrainConfig.threads); results stay deterministic for a given thread count.
    torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
        torch.set_num_threads(previous_threads)


def _progress() -> Progress:
    # Progress goes to stderr so stdout carries only the summary (pipe-friendly).
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[Tensor]:
    return list(torch.randperm(n, generator=generator).split(batch_size))


def _subset(tensors: Mapping[str, Tensor], index: Tensor) -> dict[str, Tensor]:
    return {name: t[index] for name, t in tensors.items()}


def _two_tower_optimisers(model: TwoTower, train_cfg: TrainConfig) -> list[torch.optim.Optimizer]:
    """Adam on every parameter, or with `sparse_ids` SparseAdam on the id tables and Adam on the rest."""
    if not train_cfg.sparse_ids:
        return [torch.optim.Adam(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)]
    tables = [model.user_tower.ids.table, model.item_tower.ids.table]
    for table in tables:
        table.sparse = True
    sparse = {id(table.weight) for table in tables}
    return [
        torch.optim.SparseAdam([table.weight for table in tables], lr=train_cfg.lr),
        torch.optim.Adam(
            [p for p in model.parameters() if id(p) not in sparse], lr=train_cfg.lr, weight_decay=train_cfg.weight_decay
        ),
    ]


def _epoch(
    optimisers: Sequence[torch.optim.Optimizer],
    batches: Iterable[Tensor],
    batch_loss: Callable[[Tensor], Tensor | None],
) -> float:
    """One pass: per batch of row indices, loss (None: skip the batch), backward, step; the mean batch loss."""
    total, steps = 0.0, 0
    for index in batches:
        loss = batch_loss(index)
        if loss is None:
            continue
        for optimiser in optimisers:
            optimiser.zero_grad(set_to_none=True)
        loss.backward()
        for optimiser in optimisers:
            optimiser.step()
        total += float(loss.detach())
        steps += 1
    return total / max(steps, 1)


def _report(progress: Progress | None, task: TaskID | None, epoch: int, loss: float) -> None:
    if progress is not None and task is not None:
        progress.update(task, advance=1, status=f"epoch {epoch + 1} loss {loss:.4f}")


def train_two_tower(
    positives: Mapping[str, Tensor],
    user_features: list[Feature],
    item_features: list[Feature],
    epochs: int,
    seed: int,
    cfg: TwoTowerConfig | None = None,
    train_cfg: TrainConfig | None = None,
    progress: Progress | None = None,
    valid: Mapping[str, Tensor] | None = None,
    patience: int = 1,
    max_steps: int | None = None,
) -> tuple[TwoTower, list[float]]:
    """Fit both towers on positive (user, item) rows with in-batch softmax + logQ; returns model and epoch losses.

    With `valid` (positives held out of `positives`), `epochs` is a maximum: training stops once the
    validation loss has not improved for `patience` epochs and the best epoch's weights are kept; the
    returned losses then hold one entry per epoch run (len(losses) - patience is the chosen epoch count
    when it stopped early). `max_steps`: each epoch stops after that many batches (benchmarks time a slice
    of an epoch over the full id vocabulary).
    """
    cfg = cfg or TwoTowerConfig()
    train_cfg = train_cfg or TrainConfig()
    user_ids, item_ids = positives["user_id"], positives["item_id"]
    cfg.n_user_ids = int(torch.unique(user_ids).numel())
    cfg.n_item_ids = int(torch.unique(item_ids).numel())
    cfg.user_features = [feature_to_dict(f) for f in user_features]
    cfg.item_features = [feature_to_dict(f) for f in item_features]
    model = TwoTower(cfg)
    model.user_tower.ids.set_vocabulary(user_ids)
    model.item_tower.ids.set_vocabulary(item_ids)
    model.user_tower.encoder.fit_norm(positives)
    model.item_tower.encoder.fit_norm(positives)

    # logQ: an item's chance to be any given in-batch negative is its share of the positives.
    vocab, counts = torch.unique(item_ids, return_counts=True)
    log_q_by_row = torch.log(counts.double() / counts.sum()).float()[torch.searchsorted(vocab, item_ids)]

    optimisers = _two_tower_optimisers(model, train_cfg)
    forward: Callable[[Mapping[str, Tensor]], tuple[Tensor, Tensor]] = model
    rank, world = 0, 1
    if torch.distributed.is_initialized():  # one of models_ml.distributed's workers
        from torch.nn.parallel import DistributedDataParallel

        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        forward = DistributedDataParallel(model)
    generator = torch.Generator().manual_seed(seed)
    epoch_seconds: list[float] = []  # the batch loop alone (no setup, no validation): what benchmarks time
    best: tuple[float, int, dict[str, Tensor] | None] = (float("inf"), 0, None)
    n = len(user_ids)
    losses: list[float] = []
    task = progress.add_task("two-tower", total=epochs, status="") if progress else None
    model.train()

    def batch_loss(index: Tensor) -> Tensor | None:
        if len(index) < 2:  # in-batch softmax needs at least one negative
            return None
        batch = _subset(positives, index)
        user_emb, item_emb = forward(batch)
        return in_batch_softmax_loss(user_emb, item_emb, batch["item_id"], log_q_by_row[index], cfg.temperature)

    for epoch in range(epochs):
        # Every worker draws the same permutation and takes every world-th batch of it; all take the same
        # number, since each step's gradient average waits for every worker.
        batches = _batches(n, train_cfg.batch_size, generator)
        batches = batches[rank : len(batches) - len(batches) % world : world] if world > 1 else batches
        batches = batches[:max_steps] if max_steps is not None else batches
        epoch_started = time.perf_counter()
        losses.append(_epoch(optimisers, batches, batch_loss))
        epoch_seconds.append(time.perf_counter() - epoch_started)
        _report(progress, task, epoch, losses[-1])
        if valid is not None:
            valid_loss = _validation_loss(model, valid, cfg.temperature, train_cfg.batch_size, vocab, counts)
            if valid_loss < best[0]:
                best = (valid_loss, epoch + 1, copy.deepcopy(model.state_dict()))
            elif epoch + 1 - best[1] >= patience:
                break
    if valid is not None and best[2] is not None:
        model.load_state_dict(best[2])
        setattr(model, "best_epochs", best[1])  # noqa: B010 (read by tuning; not a TwoTower field)
    setattr(model, "epoch_seconds", epoch_seconds)  # noqa: B010 (read by bench/train_index.py)
    return model.eval(), losses


@torch.inference_mode()
def _validation_loss(
    model: TwoTower, valid: Mapping[str, Tensor], temperature: float, batch_size: int, vocab: Tensor, counts: Tensor
) -> float:
    """Mean in-batch softmax loss on held-out positives, batches in row order (deterministic)."""
    model.eval()
    item_ids = valid["item_id"]
    share = counts.double() / counts.sum()
    pos = torch.searchsorted(vocab, item_ids).clamp(max=len(vocab) - 1)
    known = vocab[pos] == item_ids
    log_q = torch.where(known, torch.log(share[pos]), torch.log(share.min())).float()
    total, steps = 0.0, 0
    for start in range(0, len(item_ids) - 1, batch_size):
        index = torch.arange(start, min(len(item_ids), start + batch_size))
        if len(index) < 2:
            continue
        batch = _subset(valid, index)
        loss = in_batch_softmax_loss(
            model.user_embedding(batch), model.item_embedding(batch), batch["item_id"], log_q[index], temperature
        )
        total += float(loss)
        steps += 1
    model.train()
    return total / max(steps, 1)


@torch.inference_mode()
def two_tower_scores(model: TwoTower, tensors: Mapping[str, Tensor], batch_size: int = 8192) -> Tensor:
    """Cosine score of each row's (user, item) pair, from the row's own point-in-time features."""
    n = len(tensors["user_id"])
    parts = []
    for start in range(0, n, batch_size):
        batch = _subset(tensors, torch.arange(start, min(n, start + batch_size)))
        parts.append((model.user_embedding(batch) * model.item_embedding(batch)).sum(-1))
    return torch.cat(parts)


def train_ranker(
    examples: Mapping[str, Tensor],
    labels: Tensor,
    features: list[Feature],
    epochs: int,
    seed: int,
    train_cfg: TrainConfig | None = None,
    progress: Progress | None = None,
    weights: Tensor | None = None,
) -> tuple[Ranker, list[float]]:
    """Fit the ranker with (weighted) BCE on engagement labels over the named features; returns model and losses."""
    train_cfg = train_cfg or TrainConfig()
    ranker = make_ranker(features)
    ranker.encoder.fit_norm(examples)
    optimiser = [torch.optim.Adam(ranker.parameters(), lr=train_cfg.ranker_lr)]
    generator = torch.Generator().manual_seed(seed + 1)
    losses: list[float] = []
    task = progress.add_task("ranker", total=epochs, status="") if progress else None
    ranker.train()

    def batch_loss(index: Tensor) -> Tensor:
        return bce_loss(ranker(_subset(examples, index)), labels[index], None if weights is None else weights[index])

    for epoch in range(epochs):
        losses.append(_epoch(optimiser, _batches(len(labels), train_cfg.ranker_batch_size, generator), batch_loss))
        _report(progress, task, epoch, losses[-1])
    return ranker.eval(), losses


def pass_through_ranker(
    features: list[Feature], sizes: SourceSizes, n_items: int, blend: Mapping[str, float] | None = None
) -> Ranker:
    """The ranker of training rows with one class only: it ranks by the EASE source's score, else the two-tower's.

    Data without logged skips (MovieLens: every rating is a play) and without drawn negatives gives the
    ranker nothing but positives; BCE then drives every logit up and the fitted MLP is a constant whose
    order is noise (docs/benchmarks.md, MovieLens). The strongest source's own order is the honest answer,
    plus the other sources' inputs by `blend`'s weights (chosen on validation, models_ml.blend).
    """
    from streamrec.models_ml.ease import MAX_EASE_ITEMS
    from streamrec.models_ml.ranker import RankerConfig

    name = EASE_SCORE.name if sizes.ease > 0 and n_items <= MAX_EASE_ITEMS else TWO_TOWER_SCORE.name
    weights = dict(blend or {}) if name == EASE_SCORE.name else {}
    return make_ranker(features, RankerConfig(source_score=name, blend=weights)).eval()


def watch_weights(labels: np.ndarray, watch_seconds: np.ndarray, watch_weight: float) -> np.ndarray:
    """Per-row loss weights: 1 for negatives, 1 + watch_weight * watch / mean play watch for positives.

    The simulator's second outcome is watch time: a ranker trained on engagement alone happily fills a page
    with short items that get played and left, and the personalised pages lost watch time to popularity.
    Weighting each positive by its watch seconds makes the objective the watch-weighted engagement. Positives
    without watch seconds (complete, like: the play carries them) keep weight 1; the positives' weights are
    rescaled to mean 1 so the positive/negative balance of the loss does not move.
    """
    labels = np.asarray(labels)
    watch = np.nan_to_num(np.asarray(watch_seconds, dtype=np.float64))
    weights = np.ones(len(labels), dtype=np.float64)
    positive = labels == 1
    played = positive & (watch > 0)
    if watch_weight > 0 and played.any():
        weights[positive] = 1.0 + watch_weight * watch[positive] / watch[played].mean()
        weights[positive] /= weights[positive].mean()
    return weights.astype(np.float32)


def auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney), None when only one class is present."""
    from scipy.stats import rankdata

    positives = labels == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _reference_distributions(
    con: Any, snapshot: Mapping[str, np.ndarray], features: list[Feature], as_of: dt.datetime
) -> dict[str, Any]:
    """The warehouse's PSI reference if captured, else decile bins of the training snapshot."""
    if table_exists(con, "reference", "feature_distributions"):
        table = con.sql("select * from reference.feature_distributions").to_arrow_table()
        return {"source": "reference.feature_distributions", "rows": table.to_pylist()}
    out: dict[str, Any] = {}
    for feature in features:
        if not feature.is_numeric:
            continue
        values = np.asarray(snapshot[feature.name], dtype=np.float64)
        present = values[~np.isnan(values)]
        edges = np.unique(np.quantile(present, np.linspace(0, 1, 11))) if present.size else np.array([])
        shares = np.histogram(present, bins=edges)[0] / max(present.size, 1) if edges.size > 1 else np.array([])
        out[feature.name] = {
            "edges": edges.tolist(),
            "shares": shares.tolist(),
            "mean": float(present.mean()) if present.size else None,
            "null_share": float(1 - present.size / max(values.size, 1)),
        }
    return {"source": f"computed from the feature snapshot at {as_of.isoformat()}", "features": out}


def _write_ease_files(staging: Path, data: TrainingData, item_ids: np.ndarray, train_cfg: TrainConfig) -> SourceSizes:
    """EASE fitted on every positive of `data` (catalogue row order) and each user's positives; returns the sizes.

    A catalogue above MAX_EASE_ITEMS gets no EASE source (its size 0 in the manifest): the ranker's EASE
    inputs are then constant, in training as in serving.
    """
    import scipy.sparse as sp

    from streamrec.models_ml.ease import MAX_EASE_ITEMS, fit_ease
    from streamrec.models_ml.sources import catalogue_rows

    sizes = train_cfg.source_sizes()
    if sizes.ease <= 0 or len(item_ids) > MAX_EASE_ITEMS:
        return SourceSizes(sizes.two_tower, sizes.neighbours, sizes.popularity, ease=0)
    events = data.positive_events
    cols = catalogue_rows(item_ids, events["item_id"])
    ok = cols >= 0
    users, rows = np.unique(events["user_id"][ok].astype(np.int64), return_inverse=True)
    x = sp.csr_matrix((np.ones(int(ok.sum())), (rows, cols[ok])), shape=(len(users), len(item_ids)))
    x.data[:] = 1.0
    np.save(staging / EASE_WEIGHTS_FILE, fit_ease(x, train_cfg.ease_l2))
    coo = x.tocoo()
    history = pa.table(
        {"user_id": pa.array(users[coo.row], pa.int64()), "item_id": pa.array(item_ids[coo.col], pa.int64())}
    )
    pq.write_table(history, staging / USER_HISTORY_FILE)
    return sizes


def _write_bundle_files(
    settings: Settings,
    staging: Path,
    run: TrainRun,
    data: TrainingData,
    model: TwoTower,
    ranker: Ranker,
) -> tuple[np.ndarray, IndexInfo]:
    """Every bundle file except the manifest; returns (item ids, IndexInfo)."""
    contract = run.contract
    train_config = dataclasses.asdict(run.train_cfg)
    save_two_tower(model, staging / "retrieval.pt", contract.sha256, train_config)
    save_ranker(ranker, staging / "ranker.pt", contract.sha256, train_config)

    item_t = to_tensors(data.item_snapshot_latest, data.item_features)
    user_t = to_tensors(data.user_snapshot_latest, data.user_features)
    item_ids = data.item_snapshot_latest["item_id"].astype(np.int64)
    item_emb = embed(model.item_embedding, item_t)
    user_emb = embed(model.user_embedding, user_t)
    index, info = build_index(item_emb, queries=user_emb)
    faiss.write_index(index, str(staging / "item_index.faiss"))
    np.save(staging / "item_ids.npy", item_ids)
    np.save(staging / "item_embeddings.npy", item_emb)

    features = data.user_features + data.item_features
    schema = {
        "contract_sha256": contract.sha256,
        "features": [feature_to_dict(f) for f in features],
        "derived_features": [feature_to_dict(f) for f in (TWO_TOWER_SCORE, *SOURCE_FEATURES)],
    }
    (staging / "feature_schema.json").write_text(json.dumps(schema, indent=2))

    online = staging / "online_features"
    online.mkdir()
    user_cols = ", ".join(["user_id", "as_of", *(f.name for f in data.user_features)])
    item_cols = ", ".join(["item_id", "creator_id", "as_of", *(f.name for f in data.item_features)])
    with connect(settings, read_only=True) as con:
        for table, cols, key in (("user_features", user_cols, "user_id"), ("item_features", item_cols, "item_id")):
            arrow = con.sql(
                f"select {cols} from features.{table} where as_of = ? order by {key}", params=[data.latest_as_of]
            ).to_arrow_table()
            pq.write_table(arrow, online / f"{table}.parquet")
        latest = data.user_snapshot_latest | data.item_snapshot_latest
        reference = _reference_distributions(con, latest, features, data.latest_as_of)
        # The item-to-item source at the serving as_of: what serving reads instead of the warehouse.
        (staging / "sources").mkdir()
        for table, path, cols, order in (
            (
                "item_neighbours",
                NEIGHBOURS_FILE,
                "item_id, neighbour_item_id, similarity_score, neighbour_rank",
                "item_id, neighbour_rank",
            ),
            ("user_recent_items", RECENT_ITEMS_FILE, "user_id, item_id, recency_rank", "user_id, recency_rank"),
        ):
            arrow = con.sql(
                f"select {cols} from features.{table} where as_of = ? order by {order}", params=[data.latest_as_of]
            ).to_arrow_table()
            pq.write_table(arrow, staging / path)
    (staging / "reference_distributions.json").write_text(json.dumps(reference, indent=2, default=str))
    return item_ids, info


def candidate_sources(sizes: SourceSizes, ease_l2: float) -> list[dict[str, Any]]:
    """The manifest's list of candidate sources: name, size and the bundle files each one serves from."""
    return [
        {"name": "two_tower", "k": sizes.two_tower, "files": [INDEX_FILE, ITEM_IDS_FILE, EMBEDDINGS_FILE]},
        {"name": "item_neighbours", "k": sizes.neighbours, "files": [NEIGHBOURS_FILE, RECENT_ITEMS_FILE]},
        {"name": "popularity", "k": sizes.popularity, "files": [ONLINE_ITEM_FILE]},
        *(
            [{"name": "ease", "k": sizes.ease, "l2": ease_l2, "files": [EASE_WEIGHTS_FILE, USER_HISTORY_FILE]}]
            if sizes.ease > 0
            else []
        ),
    ]


def _two_tower_rows(data: TrainingData, early_stopping: bool) -> tuple[dict[str, Tensor], dict[str, Tensor] | None]:
    """(training positives, validation positives): the latest 10% by event time when `early_stopping`."""
    positive_rows = take_rows(data.examples, data.examples["label"] == 1)
    positives = to_tensors(positive_rows, data.user_features + data.item_features)
    if not early_stopping:
        return positives, None
    order = np.argsort(positive_rows["event_ts"], kind="stable")
    cut = int(len(order) * 0.9)
    return _subset(positives, torch.from_numpy(np.sort(order[:cut]))), _subset(positives, torch.from_numpy(order[cut:]))


def _ranker_examples(
    rows: Mapping[str, np.ndarray], model: TwoTower, features: Sequence[Feature], train_cfg: TrainConfig
) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """(inputs by name, labels, loss weights) of the ranker's rows: contract features, two-tower and source inputs."""
    from streamrec.models_ml.negatives import SOURCE_CODES

    examples = to_tensors(rows, features)
    examples[TWO_TOWER_SCORE.name] = two_tower_scores(model, examples)
    for feature in SOURCE_FEATURES:
        examples[feature.name] = torch.from_numpy(np.asarray(rows[feature.name], dtype=np.float32))
    labels = torch.from_numpy(rows["label"].astype(np.float32))
    row_weights = watch_weights(rows["label"], rows["watch_seconds"], train_cfg.watch_weight)
    # Drawn negatives were never shown: "not engaged" there mixes exposure with taste, so they may weigh less
    # than a logged skip (shown, examined, passed over), which is the direct evidence of low relevance.
    row_weights[rows["source"] != SOURCE_CODES["logged"]] *= train_cfg.drawn_negative_weight
    return examples, labels, torch.from_numpy(row_weights)


@dataclass
class Fit:
    """Both models fitted on one TrainingData, with what the bundle's metrics report about the fit."""

    model: TwoTower
    ranker: Ranker
    two_tower_losses: list[float]
    ranker_losses: list[float]
    ranker_train_auc: float | None
    train_positives: int
    train_examples: int
    negatives_by_source: dict[str, int]
    seconds_per_epoch: float
    two_tower_epochs: int


def fit_models(
    data: TrainingData,
    epochs: int,
    seed: int,
    train_cfg: TrainConfig,
    tt_cfg: TwoTowerConfig | None = None,
    progress: Progress | None = None,
    early_stopping: bool = False,
    blend: Mapping[str, float] | None = None,
) -> Fit:
    """Two-tower on the positives, then the ranker on positives, skips and its sources' negatives (one seed).

    `early_stopping`: `epochs` is a maximum; the latest 10% of the positives (by event time) are held out
    of the two-tower and it stops when their loss stops improving (Fit.two_tower_epochs is the epoch kept).
    `blend`: the weights a pass-through ranker adds the other sources' inputs with (RankerConfig.blend).
    """
    from streamrec.models_ml.negatives import SOURCE_CODES, ranker_rows

    features = data.user_features + data.item_features
    positives, valid = _two_tower_rows(data, early_stopping)
    epoch_started = time.perf_counter()
    if train_cfg.nproc > 1:
        from streamrec.models_ml.distributed import train_two_tower_parallel

        model, tt_losses = train_two_tower_parallel(
            positives,
            data.user_features,
            data.item_features,
            epochs,
            seed,
            train_cfg.nproc,
            cfg=tt_cfg,
            train_cfg=train_cfg,
            valid=valid,
        )
    else:
        model, tt_losses = train_two_tower(
            positives,
            data.user_features,
            data.item_features,
            epochs,
            seed,
            cfg=tt_cfg,
            train_cfg=train_cfg,
            progress=progress,
            valid=valid,
        )
    seconds_per_epoch = (time.perf_counter() - epoch_started) / max(epochs, 1)

    rows = ranker_rows(
        data,
        model,
        train_cfg.source_sizes(),
        two_tower=train_cfg.hard_negatives,
        neighbours=train_cfg.neighbour_negatives,
        popularity=train_cfg.popularity_negatives,
        uniform=train_cfg.ranker_negatives,
        depth=train_cfg.negative_depth,
        seed=seed,
        ease=train_cfg.ease_negatives,
        ease_l2=train_cfg.ease_l2,
    )
    by_source = {name: int((rows["source"] == code).sum()) for name, code in SOURCE_CODES.items()}
    examples, labels, weights = _ranker_examples(rows, model, features, train_cfg)
    ranker_features = [*features, TWO_TOWER_SCORE, *SOURCE_FEATURES]
    ranker_losses: list[float] = []
    if len(np.unique(rows["label"])) < 2:
        n_items = len(data.item_snapshot_latest["item_id"])
        ranker = pass_through_ranker(ranker_features, train_cfg.source_sizes(), n_items, blend)
    else:
        if not train_cfg.ranker_two_tower_inputs:
            skipped = {TWO_TOWER_SCORE.name, TWO_TOWER_RANK.name}
            ranker_features = [f for f in ranker_features if f.name not in skipped]
        ranker, ranker_losses = train_ranker(
            examples, labels, ranker_features, epochs, seed, train_cfg=train_cfg, progress=progress, weights=weights
        )
    with torch.inference_mode():
        ranker_train_auc = auc(rows["label"], ranker(examples).numpy())
    return Fit(
        model=model,
        ranker=ranker,
        two_tower_losses=tt_losses,
        ranker_losses=ranker_losses,
        ranker_train_auc=ranker_train_auc,
        train_positives=len(positives["user_id"]),
        train_examples=len(labels),
        negatives_by_source=by_source,
        seconds_per_epoch=seconds_per_epoch,
        two_tower_epochs=int(getattr(model, "best_epochs", len(tt_losses))),
    )


@dataclass
class TrainRun:
    """One `streamrec train` call's fixed inputs: where the bundle goes and the settings both fits use."""

    version: str
    bundle_dir: Path
    contract: FeatureContract
    train_cfg: TrainConfig
    tt_cfg: TwoTowerConfig
    epochs: int
    seed: int
    tuning: dict[str, Any]
    # chosen on validation by `train` (models_ml.blend): the pass-through ranker's blend weights and the records
    blend: dict[str, float] = dataclasses.field(default_factory=dict)
    validation: dict[str, Any] = dataclasses.field(default_factory=dict)

    def hyperparameters(self) -> dict[str, Any]:
        """What the manifest and `streamrec versions` show: TrainConfig, the two-tower's sizes, epochs."""
        return {
            **dataclasses.asdict(self.train_cfg),
            "temperature": self.tt_cfg.temperature,
            "id_dim": self.tt_cfg.id_dim,
            "hidden_dim": self.tt_cfg.hidden_dim,
            "embedding_dim": self.tt_cfg.embedding_dim,
            "epochs": self.epochs,
        }

    def fit(self, data: TrainingData, progress: Progress) -> Fit:
        """Both models on `data` with this run's settings (a fresh copy of the two-tower config each time)."""
        return fit_models(
            data,
            self.epochs,
            self.seed,
            self.train_cfg,
            tt_cfg=copy.deepcopy(self.tt_cfg),
            progress=progress,
            blend=self.blend,
        )


def _new_bundle_dir(settings: Settings, version: str | None) -> tuple[str, Path]:
    version = version or default_version()
    if not VERSION_PATTERN.match(version):
        raise StreamRecError(f"version tag {version!r} must be letters, digits, '.', '_' or '-' (max 64)")
    bundle_dir = settings.artifacts_dir / version
    if bundle_dir.exists():
        raise StreamRecError(f"bundle {bundle_dir} already exists: choose another --version")
    return version, bundle_dir


def _plan_run(
    settings: Settings,
    version: str | None,
    epochs: int,
    seed: int,
    refit: bool | None,
    train_cfg: TrainConfig | None,
    tune_seconds: float | None,
) -> TrainRun:
    """Check the version, then settle the hyperparameters (tuned on validation when `tune_seconds` is set)."""
    version, bundle_dir = _new_bundle_dir(settings, version)
    contract = load_contract()
    # a copy: choosing on validation sets fields (ease_l2) that must not leak into the caller's config
    train_cfg = dataclasses.replace(train_cfg) if train_cfg is not None else TrainConfig()
    if refit is not None:
        train_cfg.refit = refit
    tt_cfg = TwoTowerConfig()
    tuning: dict[str, Any] = {"tuned": False}
    if tune_seconds is not None:
        from streamrec.models_ml.tune import tune

        train_cfg, tt_cfg, epochs, tuning = tune(settings, contract, train_cfg, tune_seconds, seed, epochs)
    return TrainRun(version, bundle_dir, contract, train_cfg, tt_cfg, epochs, seed, tuning)


def _refit(
    settings: Settings, run: TrainRun, split_fit: Fit, data: TrainingData, progress: Progress
) -> tuple[Fit, TrainingData, dict[str, Any]]:
    """(served fit, its data, the manifest's refit record): the split models themselves unless refitting."""
    if not run.train_cfg.refit:
        return split_fit, data, {"refit": False}
    # Same hyperparameters and seed, every day up to the latest as_of: the served bundle sees the holdout
    # window too. Features stay point-in-time (each row keeps its own snapshot).
    served_data = load_training_data(settings, run.contract, holdout_days=0)
    served = run.fit(served_data, progress)
    return (
        served,
        served_data,
        {
            "refit": True,
            "refit_train_positives": served.train_positives,
            "refit_train_examples": served.train_examples,
            "refit_examples_before": served_data.split_as_of.isoformat(),
            "refit_two_tower_loss_by_epoch": served.two_tower_losses,
            "refit_ranker_train_auc": served.ranker_train_auc,
            "refit_ranker_scores_by": served.ranker.cfg.source_score or "mlp",
        },
    )


def _metrics(
    run: TrainRun, split_fit: Fit, data: TrainingData, offline: OfflineResult, info: IndexInfo, refit: dict[str, Any]
) -> dict[str, Any]:
    """The manifest's metrics: the split model's offline figures and fit, the index, the run's settings."""
    return {
        **offline.metrics,
        "two_tower_loss_by_epoch": split_fit.two_tower_losses,
        "ranker_loss_by_epoch": split_fit.ranker_losses,
        "ranker_train_auc": split_fit.ranker_train_auc,
        # "mlp", or the source score a pass-through ranker orders by (training rows of one class)
        "ranker_scores_by": split_fit.ranker.cfg.source_score or "mlp",
        "ranker_blend": dict(split_fit.ranker.cfg.blend),
        "validation": run.validation,
        "train_positives": split_fit.train_positives,
        "train_examples": split_fit.train_examples,
        "ranker_negatives_by_source": split_fit.negatives_by_source,
        "seconds_per_epoch": split_fit.seconds_per_epoch,
        "split_as_of": data.split_as_of.isoformat(),
        "features_as_of": data.latest_as_of.isoformat(),
        "seed": run.seed,
        "epochs": run.epochs,
        "index_build_seconds": info.build_seconds,
        "index_params": info.params,
        "hyperparameters": run.hyperparameters(),
        "tuning": run.tuning,
        **refit,
    }


def _write_bundle(
    settings: Settings,
    run: TrainRun,
    served: Fit,
    served_data: TrainingData,
    metrics_of: Callable[[IndexInfo], dict[str, Any]],
) -> tuple[np.ndarray, IndexInfo]:
    """Write the served models' bundle, manifest last, and move it into place; returns (item ids, index info).

    Built under artifacts/.staging/<version> (the manifest wants the directory named as the version), then
    moved into place in one rename: a crash never leaves a half-written bundle under artifacts/.
    """
    from streamrec.models_ml.bundle import write_manifest

    staging = settings.artifacts_dir / ".staging" / run.version
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        item_ids, info = _write_bundle_files(settings, staging, run, served_data, served.model, served.ranker)
        sizes = _write_ease_files(staging, served_data, item_ids, run.train_cfg)
        meta = {
            "version": run.version,
            "created_at": dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
            "contract_sha256": run.contract.sha256,
            "embedding_dim": served.model.cfg.embedding_dim,
            "n_items": len(item_ids),
            "index_kind": info.kind,
            "index_recall_at_500": info.recall_at_500,
            "metrics": metrics_of(info),
            "candidate_sources": candidate_sources(sizes, run.train_cfg.ease_l2),
        }
        write_manifest(staging, meta)
        os.replace(staging, run.bundle_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return item_ids, info


def _summary(
    run: TrainRun, seconds: float, split_fit: Fit, served: Fit, offline: OfflineResult, n_items: int, info: IndexInfo
) -> str:
    m = offline.metrics
    losses = split_fit.two_tower_losses
    refit_note = (
        f"served models refit on all history ({served.train_positives} positives)"
        if run.train_cfg.refit
        else "served models = the split models (no refit)"
    )
    return (
        f"trained {run.version} in {seconds:.1f} s: {split_fit.train_positives} positives, "
        f"{run.epochs} epochs ({split_fit.seconds_per_epoch:.1f} s/epoch, loss {losses[0]:.3f} -> {losses[-1]:.3f}), "
        f"EASE L2 {run.train_cfg.ease_l2:g}{' (validated)' if run.validation['ease_l2'].get('grid') else ''}; "
        f"index {info.kind} over {n_items} items, recall@500 {info.recall_at_500:.3f}; "
        f"offline on {int(m['heldout_users'])} held-out users: recall@10 model {m['model_recall@10']:.3f} "
        f"vs popularity {m['popularity_recall@10']:.3f}, ndcg@10 {m['model_ndcg@10']:.3f} vs "
        f"{m['popularity_ndcg@10']:.3f}; {refit_note}"
    )


def _choose_ease_l2(run: TrainRun, data: TrainingData) -> None:
    """Set the run's EASE L2 to the grid's best on a validation fold of the positives before the split."""
    from streamrec.models_ml.blend import choose_ease_l2

    cfg = run.train_cfg
    drawn = cfg.ranker_negatives + cfg.hard_negatives + cfg.neighbour_negatives
    one_class = (
        len(np.unique(data.examples["label"])) < 2 and drawn + cfg.popularity_negatives + cfg.ease_negatives == 0
    )
    when = {"always": True, "never": False, "one_class": one_class}.get(cfg.ease_l2_validation)
    if when is None:
        raise StreamRecError(f"ease_l2_validation must be one_class, always or never (got {cfg.ease_l2_validation!r})")
    if not cfg.ease_l2_grid or cfg.ease_k <= 0 or not when:
        reason = "no grid or no EASE source" if when else f"ease_l2_validation {cfg.ease_l2_validation!r}"
        if cfg.ease_l2_validation == "one_class" and not one_class:
            reason += " and the ranker learns from two classes (logged skips or drawn negatives)"
        run.validation["ease_l2"] = {"chosen": cfg.ease_l2, "grid": [], "reason": reason}
        return
    item_ids = data.item_snapshot_split["item_id"].astype(np.int64)
    l2, record = choose_ease_l2(data.positive_events, item_ids, cfg.ease_l2_grid, cfg.validation_share, run.seed)
    if l2 is not None:
        cfg.ease_l2 = l2
    run.validation["ease_l2"] = record


def _choose_blend(run: TrainRun, split_fit: Fit, offline: OfflineResult) -> bool:
    """For a pass-through ranker over the EASE score: choose the blend on the holdout, set it; True if it did."""
    from streamrec.models_ml.blend import choose_blend

    ranker = split_fit.ranker
    if not run.train_cfg.blend_sources or ranker.cfg.source_score != EASE_SCORE.name:
        return False
    truths = [
        set(catalogue_rows(offline.item_ids, np.fromiter(offline.holdout[u], np.int64)).tolist())
        for u in offline.user_ids.tolist()
    ]
    if len(truths) < run.train_cfg.blend_min_users:
        run.validation["blend"] = {
            "chosen": {},
            "users": len(truths),
            "reason": f"{len(truths)} held-out users < blend_min_users {run.train_cfg.blend_min_users}",
        }
        return False
    weights, record = choose_blend(
        EASE_SCORE.name, offline.candidates, offline.inputs, truths, np.arange(len(offline.item_ids))
    )
    run.blend = weights
    run.validation["blend"] = record
    ranker.cfg.blend = dict(weights)
    return True


def train(
    settings: Settings,
    epochs: int = 3,
    seed: int = 7,
    version: str | None = None,
    refit: bool | None = None,
    train_cfg: TrainConfig | None = None,
    tune_seconds: float | None = None,
) -> str:
    """Train, evaluate on the holdout split, refit on all history, bundle, register; returns a summary paragraph.

    The split model (trained on history before the holdout split) gives the offline figures; with `refit`
    (TrainConfig.refit by default) the served models are then fitted again, same hyperparameters and seed,
    on every interaction up to the latest as_of, so the bundle does not miss the last `holdout_days` days.
    The manifest's metrics carry the split model's figures and a `refit` record. `tune_seconds`: first search
    the hyperparameters on a validation window under that budget (`models_ml.tune`); `epochs` is then the
    early-stopping ceiling and the chosen values are used for the split model and the refit alike.
    """
    from streamrec.models_ml.registry import register

    started = time.perf_counter()
    run = _plan_run(settings, version, epochs, seed, refit, train_cfg, tune_seconds)
    data = load_training_data(settings, run.contract, holdout_days=run.train_cfg.holdout_days)
    _choose_ease_l2(run, data)
    with deterministic(seed, run.train_cfg.threads), _progress() as progress:
        split_fit = run.fit(data, progress)
        offline = recommend_offline(
            split_fit.model, split_fit.ranker, data, run.train_cfg.source_sizes(), run.train_cfg.ease_l2
        )
        if _choose_blend(run, split_fit, offline):
            offline = recommend_offline(
                split_fit.model, split_fit.ranker, data, run.train_cfg.source_sizes(), run.train_cfg.ease_l2
            )
        served, served_data, refit_record = _refit(settings, run, split_fit, data, progress)
        item_ids, info = _write_bundle(
            settings,
            run,
            served,
            served_data,
            lambda info: _metrics(run, split_fit, data, offline, info, refit_record),
        )

    rows = write_offline(settings, run.version, offline)
    register(settings, run.bundle_dir)
    summary = _summary(run, time.perf_counter() - started, split_fit, served, offline, len(item_ids), info)
    return f"{summary}; {rows} offline rows; bundle {run.bundle_dir} (registered, not promoted)"
