"""Data-parallel two-tower training (`streamrec train --nproc 2`): deterministic, and as good as one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from streamrec.contracts import load_contract
from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings
from streamrec.models_ml.data import TrainingData, load_training_data
from streamrec.models_ml.distributed import train_two_tower_parallel
from streamrec.models_ml.model import TwoTower
from streamrec.models_ml.offline import embed
from streamrec.models_ml.tensors import take_rows, to_tensors
from streamrec.models_ml.train import TrainConfig, deterministic, train_config_from_checkpoint, train_two_tower

pytestmark = pytest.mark.slow

EPOCHS, SEED = 2, 3


def _recall_at(model: TwoTower, data: TrainingData, k: int) -> float:
    """Share of the holdout's (user, item) pairs in the user's top k by two-tower score at the split."""
    users = data.user_snapshot_split["user_id"].astype(np.int64)
    items = data.item_snapshot_split["item_id"].astype(np.int64)
    user_emb = embed(model.user_embedding, to_tensors(data.user_snapshot_split, data.user_features))
    item_emb = embed(model.item_embedding, to_tensors(data.item_snapshot_split, data.item_features))
    top = np.argsort(-(user_emb @ item_emb.T), axis=1)[:, :k]
    truth_users = data.holdout_pairs["user_id"].astype(np.int64)
    truth_items = data.holdout_pairs["item_id"].astype(np.int64)
    known = np.isin(truth_users, users)
    rows = np.searchsorted(users, truth_users[known])
    hits = [item in set(items[top[row]].tolist()) for row, item in zip(rows, truth_items[known], strict=True)]
    return float(np.mean(hits))


def test_two_processes_are_deterministic_and_within_noise_of_one(built_home) -> None:
    data = load_training_data(Settings(home=built_home), load_contract())
    features = data.user_features + data.item_features
    positives = to_tensors(take_rows(data.examples, data.examples["label"] == 1), features)
    args = (positives, data.user_features, data.item_features, EPOCHS, SEED)

    with deterministic(SEED):
        single, _ = train_two_tower(*args)
    first, losses = train_two_tower_parallel(*args, nproc=2)
    second, _ = train_two_tower_parallel(*args, nproc=2)

    assert len(losses) == EPOCHS and losses[-1] < losses[0]
    for name, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[name]), name
    # Two workers step on two batches at a time (half the steps): the result differs from one process,
    # but retrieval quality stays within noise of it.
    weight = "user_tower.mlp.0.weight"
    assert not torch.equal(first.state_dict()[weight], single.state_dict()[weight])
    one, two = _recall_at(single, data, 100), _recall_at(first, data, 100)
    assert one > 0.2
    assert abs(one - two) <= 0.05, (one, two)


def test_two_intra_op_threads_are_deterministic(built_home) -> None:
    data = load_training_data(Settings(home=built_home), load_contract())
    features = data.user_features + data.item_features
    positives = to_tensors(take_rows(data.examples, data.examples["label"] == 1), features)
    runs = []
    for _ in range(2):
        with deterministic(SEED, threads=2):
            assert torch.get_num_threads() == 2
            runs.append(train_two_tower(positives, data.user_features, data.item_features, 1, SEED)[0])
    for name, value in runs[0].state_dict().items():
        assert torch.equal(value, runs[1].state_dict()[name]), name


def test_nproc_below_two_is_refused_in_one_line(built_home) -> None:
    with pytest.raises(StreamRecError, match="at least 2 processes"):
        train_two_tower_parallel({}, [], [], 1, 0, nproc=1, train_cfg=TrainConfig())


def test_streamrec_train_nproc_2_from_the_console_script(built_home, copy_home) -> None:
    """The installed `streamrec` script spawns its workers (they re-import it without running a command)."""
    settings = copy_home(built_home)
    script = Path(sys.executable).parent / "streamrec"
    done = subprocess.run(
        [str(script), "train", "--nproc", "2", "--threads", "2", "--epochs", "1", "--no-refit", "--version", "vddp"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "STREAMREC_HOME": str(settings.home)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "trained vddp" in done.stdout
    stored = train_config_from_checkpoint(settings.artifacts_dir / "vddp" / "retrieval.pt")
    assert stored.nproc == 2 and stored.threads == 2 and stored.sparse_ids
