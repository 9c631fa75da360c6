"""`streamrec train`: two-tower retrieval -> item embeddings -> FAISS index -> ranker -> bundle -> registry.

Run: `STREAMREC_HOME=... streamrec train --epochs 3 --seed 7` after `streamrec build`.
Reads the warehouse read-only (by column name, validated against the contract), trains with a
fixed seed (deterministic), writes every bundle file into a staging directory, writes the manifest
last, moves the directory into place, writes the offline evaluation rows and registers the
version. It never promotes: `streamrec promote VERSION` does that.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import random
import re
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow.parquet as pq
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from torch import Tensor

from streamrec.contracts.schema import Feature, FeatureContract, load_contract
from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings
from streamrec.core.warehouse import connect, table_exists
from streamrec.models_ml.data import TrainingData, load_training_data
from streamrec.models_ml.index import build_index
from streamrec.models_ml.model import TwoTower, TwoTowerConfig, feature_to_dict, in_batch_softmax_loss, save_two_tower
from streamrec.models_ml.offline import embed, recommend_offline, write_offline
from streamrec.models_ml.ranker import TWO_TOWER_SCORE, Ranker, bce_loss, make_ranker, save_ranker
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
    ranker_negatives: int = 4  # uniform catalogue negatives per positive for the ranker (besides skips)
    holdout_days: int = 7  # last days held out for offline evaluation


def default_version() -> str:
    """`v` + UTC timestamp, e.g. v20260101-120000."""
    return "v" + dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")


@contextlib.contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seed every RNG, use one torch thread and deterministic kernels; restores the previous torch settings."""
    previous = torch.are_deterministic_algorithms_enabled()
    previous_threads = torch.get_num_threads()
    # One intra-op thread: these models are small, so extra threads buy little and, on a busy machine,
    # OpenMP spin-waiting made epochs 50x slower; a single thread also fixes the reduction order.
    torch.set_num_threads(1)
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


def train_two_tower(
    positives: Mapping[str, Tensor],
    user_features: list[Feature],
    item_features: list[Feature],
    epochs: int,
    seed: int,
    cfg: TwoTowerConfig | None = None,
    train_cfg: TrainConfig | None = None,
    progress: Progress | None = None,
) -> tuple[TwoTower, list[float]]:
    """Fit both towers on positive (user, item) rows with in-batch softmax + logQ; returns model and epoch losses."""
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

    optimiser = torch.optim.Adam(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    n = len(user_ids)
    losses: list[float] = []
    task = progress.add_task("two-tower", total=epochs, status="") if progress else None
    model.train()
    for epoch in range(epochs):
        total, steps = 0.0, 0
        for index in _batches(n, train_cfg.batch_size, generator):
            if len(index) < 2:
                continue
            batch = _subset(positives, index)
            loss = in_batch_softmax_loss(
                model.user_embedding(batch),
                model.item_embedding(batch),
                batch["item_id"],
                log_q_by_row[index],
                cfg.temperature,
            )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach())
            steps += 1
        losses.append(total / max(steps, 1))
        if progress and task is not None:
            progress.update(task, advance=1, status=f"epoch {epoch + 1} loss {losses[-1]:.4f}")
    return model.eval(), losses


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
) -> tuple[Ranker, list[float]]:
    """Fit the ranker with BCE on engagement labels over the named features; returns model and epoch losses."""
    train_cfg = train_cfg or TrainConfig()
    ranker = make_ranker(features)
    ranker.encoder.fit_norm(examples)
    optimiser = torch.optim.Adam(ranker.parameters(), lr=train_cfg.ranker_lr)
    generator = torch.Generator().manual_seed(seed + 1)
    losses: list[float] = []
    task = progress.add_task("ranker", total=epochs, status="") if progress else None
    ranker.train()
    for epoch in range(epochs):
        total, steps = 0.0, 0
        for index in _batches(len(labels), train_cfg.ranker_batch_size, generator):
            loss = bce_loss(ranker(_subset(examples, index)), labels[index])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach())
            steps += 1
        losses.append(total / max(steps, 1))
        if progress and task is not None:
            progress.update(task, advance=1, status=f"epoch {epoch + 1} loss {losses[-1]:.4f}")
    return ranker.eval(), losses


def sample_negatives(data: TrainingData, per_positive: int, seed: int) -> dict[str, np.ndarray]:
    """Uniformly drawn catalogue items as label-0 rows for the ranker, with features from the positive's own day.

    Skips alone teach the ranker play-vs-skip among items already shown; ranking 500 retrieved
    candidates also needs "not interesting at all", which uniform negatives supply. Each negative
    takes the user features of a positive row and an item's features at the same as_of, so it is
    as point-in-time correct as the positive.
    """
    rng = np.random.default_rng(seed)
    positives = np.flatnonzero(data.examples["label"] == 1).repeat(per_positive)
    grid_as_of = data.item_grid["as_of"]
    example_as_of = data.examples["as_of"][positives]
    start = np.searchsorted(grid_as_of, example_as_of, side="left")
    stop = np.searchsorted(grid_as_of, example_as_of, side="right")
    usable = stop > start
    positives, start, stop = positives[usable], start[usable], stop[usable]
    item_rows = start + (rng.random(len(start)) * (stop - start)).astype(np.int64)
    out = {name: data.examples[name][positives] for name in ["user_id", *(f.name for f in data.user_features)]}
    out |= {name: data.item_grid[name][item_rows] for name in ["item_id", *(f.name for f in data.item_features)]}
    out["label"] = np.zeros(len(positives), dtype=np.int64)
    return out


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


def _write_bundle_files(
    settings: Settings,
    staging: Path,
    contract: FeatureContract,
    data: TrainingData,
    model: TwoTower,
    ranker: Ranker,
) -> tuple[np.ndarray, Any]:
    """Every bundle file except the manifest; returns (item ids, IndexInfo)."""
    save_two_tower(model, staging / "retrieval.pt", contract.sha256)
    save_ranker(ranker, staging / "ranker.pt", contract.sha256)

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
        "derived_features": [feature_to_dict(TWO_TOWER_SCORE)],
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
    (staging / "reference_distributions.json").write_text(json.dumps(reference, indent=2, default=str))
    return item_ids, info


def train(settings: Settings, epochs: int = 3, seed: int = 7, version: str | None = None) -> str:
    """Train, index, bundle, register and write offline rows for one version; returns a one-paragraph summary."""
    from streamrec.models_ml.bundle import write_manifest
    from streamrec.models_ml.registry import register

    version = version or default_version()
    if not VERSION_PATTERN.match(version):
        raise StreamRecError(f"version tag {version!r} must be letters, digits, '.', '_' or '-' (max 64)")
    bundle_dir = settings.artifacts_dir / version
    if bundle_dir.exists():
        raise StreamRecError(f"bundle {bundle_dir} already exists: choose another --version")
    contract = load_contract()
    train_cfg = TrainConfig()
    started = time.perf_counter()
    data = load_training_data(settings, contract, holdout_days=train_cfg.holdout_days)
    features = data.user_features + data.item_features

    with deterministic(seed), _progress() as progress:
        positives_cols = take_rows(data.examples, data.examples["label"] == 1)
        positives = to_tensors(positives_cols, features)
        epoch_started = time.perf_counter()
        model, tt_losses = train_two_tower(
            positives, data.user_features, data.item_features, epochs, seed, train_cfg=train_cfg, progress=progress
        )
        seconds_per_epoch = (time.perf_counter() - epoch_started) / epochs

        negatives = sample_negatives(data, train_cfg.ranker_negatives, seed)
        ranker_rows = {name: np.concatenate([data.examples[name], values]) for name, values in negatives.items()}
        examples = to_tensors(ranker_rows, features)
        examples[TWO_TOWER_SCORE.name] = two_tower_scores(model, examples)
        labels = torch.from_numpy(ranker_rows["label"].astype(np.float32))
        ranker, ranker_losses = train_ranker(
            examples, labels, [*features, TWO_TOWER_SCORE], epochs, seed, train_cfg=train_cfg, progress=progress
        )
        with torch.inference_mode():
            ranker_train_auc = auc(ranker_rows["label"], ranker(examples).numpy())

        offline = recommend_offline(model, ranker, data)

        # Build under artifacts/.staging/<version> (the manifest wants the directory named as the version),
        # then move it into place in one rename: a crash never leaves a half-written bundle under artifacts/.
        staging = settings.artifacts_dir / ".staging" / version
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            item_ids, info = _write_bundle_files(settings, staging, contract, data, model, ranker)
            metrics = {
                **offline.metrics,
                "two_tower_loss_by_epoch": tt_losses,
                "ranker_loss_by_epoch": ranker_losses,
                "ranker_train_auc": ranker_train_auc,
                "train_positives": len(positives["user_id"]),
                "train_examples": len(labels),
                "seconds_per_epoch": seconds_per_epoch,
                "split_as_of": data.split_as_of.isoformat(),
                "features_as_of": data.latest_as_of.isoformat(),
                "seed": seed,
                "epochs": epochs,
                "index_build_seconds": info.build_seconds,
                "index_params": info.params,
            }
            meta = {
                "version": version,
                "created_at": dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
                "contract_sha256": contract.sha256,
                "embedding_dim": model.cfg.embedding_dim,
                "n_items": len(item_ids),
                "index_kind": info.kind,
                "index_recall_at_500": info.recall_at_500,
                "metrics": metrics,
            }
            write_manifest(staging, meta)
            os.replace(staging, bundle_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    rows = write_offline(settings, version, offline)
    register(settings, bundle_dir)
    m = offline.metrics
    return (
        f"trained {version} in {time.perf_counter() - started:.1f} s: {metrics['train_positives']} positives, "
        f"{epochs} epochs ({seconds_per_epoch:.1f} s/epoch, loss {tt_losses[0]:.3f} -> {tt_losses[-1]:.3f}); "
        f"index {info.kind} over {len(item_ids)} items, recall@500 {info.recall_at_500:.3f}; "
        f"offline on {int(m['heldout_users'])} held-out users: recall@10 model {m['model_recall@10']:.3f} "
        f"vs popularity {m['popularity_recall@10']:.3f}, ndcg@10 {m['model_ndcg@10']:.3f} vs "
        f"{m['popularity_ndcg@10']:.3f}; {rows} offline rows; bundle {bundle_dir} (registered, not promoted)"
    )
