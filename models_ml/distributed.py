"""Data-parallel two-tower training: `nproc` processes under torch.distributed (gloo, CPU).

`train_two_tower_parallel` writes the training tensors once to a scratch directory, starts `nproc`
workers with torch.multiprocessing (each memory-maps the tensors, so N workers do not hold N copies),
and each runs `train.train_two_tower` inside a process group: the same seed gives every worker the same
initial weights and the same batch permutation, each takes every nproc-th batch, and
DistributedDataParallel averages the gradients, so the replicas stay identical step after step. Worker 0
writes the trained weights back; the caller gets an ordinary TwoTower.

What this changes against one process: a step sees nproc x batch_size rows (each worker's in-batch
negatives stay its own batch), so an epoch has 1/nproc as many steps at the same learning rate. The
result is deterministic for a given seed and nproc (gloo sums in a fixed order; each worker runs one
intra-op thread).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor

from streamrec.contracts.schema import Feature
from streamrec.core.errors import StreamRecError
from streamrec.models_ml.model import TwoTower, TwoTowerConfig

if TYPE_CHECKING:
    from streamrec.models_ml.train import TrainConfig

INPUTS_FILE = "inputs.pt"
RESULT_FILE = "result.pt"


def _worker(rank: int, scratch: str, nproc: int, seed: int, epochs: int, patience: int, max_steps: int | None) -> None:
    from streamrec.models_ml.train import TrainConfig, deterministic, train_two_tower

    inputs = torch.load(Path(scratch) / INPUTS_FILE, mmap=True, weights_only=False)
    dist.init_process_group("gloo", init_method=f"file://{Path(scratch) / 'rendezvous'}", rank=rank, world_size=nproc)
    train_cfg = TrainConfig(**inputs["train_cfg"])
    try:
        with deterministic(seed, train_cfg.threads):
            model, losses = train_two_tower(
                inputs["positives"],
                inputs["user_features"],
                inputs["item_features"],
                epochs,
                seed,
                cfg=TwoTowerConfig(**inputs["tt_cfg"]),
                train_cfg=train_cfg,
                valid=inputs["valid"],
                patience=patience,
                max_steps=max_steps,
            )
        if rank == 0:
            result = {
                "config": dataclasses.asdict(model.cfg),
                "state_dict": model.state_dict(),
                "losses": losses,
                "best_epochs": getattr(model, "best_epochs", None),
                "epoch_seconds": getattr(model, "epoch_seconds", []),
            }
            torch.save(result, Path(scratch) / RESULT_FILE)
    finally:
        dist.destroy_process_group()


def train_two_tower_parallel(
    positives: Mapping[str, Tensor],
    user_features: list[Feature],
    item_features: list[Feature],
    epochs: int,
    seed: int,
    nproc: int,
    cfg: TwoTowerConfig | None = None,
    train_cfg: TrainConfig | None = None,
    valid: Mapping[str, Tensor] | None = None,
    patience: int = 1,
    max_steps: int | None = None,
) -> tuple[TwoTower, list[float]]:
    """`train.train_two_tower` in `nproc` data-parallel processes; returns (model, worker 0's epoch losses).

    `max_steps` is per worker and epoch, as in train_two_tower.
    """
    from streamrec.models_ml.train import TrainConfig

    if nproc < 2:
        raise StreamRecError(f"--nproc {nproc}: data-parallel training needs at least 2 processes")
    train_cfg = train_cfg or TrainConfig()
    with tempfile.TemporaryDirectory(prefix="streamrec-ddp-") as scratch:
        torch.save(
            {
                "positives": dict(positives),
                "valid": dict(valid) if valid is not None else None,
                "user_features": user_features,
                "item_features": item_features,
                "tt_cfg": dataclasses.asdict(cfg or TwoTowerConfig()),
                "train_cfg": dataclasses.asdict(train_cfg),
            },
            Path(scratch) / INPUTS_FILE,
        )
        try:
            mp.spawn(_worker, args=(scratch, nproc, seed, epochs, patience, max_steps), nprocs=nproc, join=True)
        except mp.ProcessRaisedException as exc:
            last = str(exc).strip().splitlines()[-1]
            raise StreamRecError(f"data-parallel training failed in a worker: {last}") from None
        except mp.ProcessExitedException as exc:
            raise StreamRecError(f"data-parallel training: a worker exited ({exc})") from None
        result = torch.load(Path(scratch) / RESULT_FILE, weights_only=False)
    model = TwoTower(TwoTowerConfig(**result["config"]))
    model.load_state_dict(result["state_dict"])
    if result["best_epochs"] is not None:
        setattr(model, "best_epochs", result["best_epochs"])  # noqa: B010 (read by tuning, as in train_two_tower)
    setattr(model, "epoch_seconds", result["epoch_seconds"])  # noqa: B010 (worker 0's batch loop, as there)
    return model.eval(), result["losses"]
