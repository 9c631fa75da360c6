"""`streamrec train --tune`: Optuna (TPE) search of the main hyperparameters under a time budget, on validation.

Validation is a window of its own, before the offline evaluation's holdout: the models learn from history
before `latest - 2 * holdout_days`, and each trial is scored by the pipeline's offline NDCG@10 on the
positives of the following `holdout_days` (items new to the user), so the holdout the bundle reports was
never looked at while choosing. Searched: the two-tower's id-embedding size, hidden width, learning rate,
weight decay, softmax temperature and batch size (its number of in-batch negatives); the ranker's drawn
negatives per source and their weight; each candidate source's size; and the two-tower's epochs, by early
stopping on a held-out tenth of the training positives (`max_epochs` is the ceiling). The chosen values go
into the bundle's metrics (`hyperparameters`, `tuning`) and `streamrec versions` shows them.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import optuna

from streamrec.contracts.schema import FeatureContract
from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings
from streamrec.models_ml.data import load_training_data
from streamrec.models_ml.model import TwoTowerConfig


def _suggest(trial: optuna.trial.BaseTrial, base: Any) -> tuple[Any, TwoTowerConfig]:
    """One trial's TrainConfig and TwoTowerConfig."""
    cfg = dataclasses.replace(
        base,
        lr=trial.suggest_float("lr", 3e-4, 1e-2, log=True),
        weight_decay=trial.suggest_float("weight_decay", 1e-8, 1e-4, log=True),
        batch_size=trial.suggest_categorical("batch_size", [256, 512, 1024]),
        hard_negatives=trial.suggest_int("hard_negatives", 0, 2),
        ease_negatives=trial.suggest_int("ease_negatives", 0, 2),
        neighbour_negatives=trial.suggest_int("neighbour_negatives", 0, 1),
        drawn_negative_weight=trial.suggest_float("drawn_negative_weight", 0.05, 1.0, log=True),
        neighbours_k=trial.suggest_categorical("neighbours_k", [50, 100, 200]),
        popularity_k=trial.suggest_categorical("popularity_k", [20, 50, 100]),
        ease_k=trial.suggest_categorical("ease_k", [50, 100, 200]),
        two_tower_k=trial.suggest_categorical("two_tower_k", [200, 500]),
    )
    tt_cfg = TwoTowerConfig(
        temperature=trial.suggest_float("temperature", 0.03, 0.3, log=True),
        id_dim=trial.suggest_categorical("id_dim", [16, 32, 64]),
        hidden_dim=trial.suggest_categorical("hidden_dim", [128, 256]),
    )
    return cfg, tt_cfg


def tune(
    settings: Settings,
    contract: FeatureContract,
    base: Any,
    seconds: float,
    seed: int,
    max_epochs: int,
) -> tuple[Any, TwoTowerConfig, int, dict[str, Any]]:
    """Search under a `seconds` budget (at least one trial); returns (TrainConfig, TwoTowerConfig, epochs, record)."""
    from streamrec.models_ml.offline import recommend_offline
    from streamrec.models_ml.train import deterministic, fit_models

    if seconds <= 0:
        raise StreamRecError(f"--tune-seconds must be > 0 (got {seconds})")
    data = load_training_data(
        settings, contract, holdout_days=2 * base.holdout_days, holdout_window_days=base.holdout_days
    )
    started = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))

    def objective(trial: optuna.Trial) -> float:
        cfg, tt_cfg = _suggest(trial, base)
        with deterministic(seed):
            fit = fit_models(data, max_epochs, seed, cfg, tt_cfg=tt_cfg, early_stopping=True)
            result = recommend_offline(fit.model, fit.ranker, data, cfg.source_sizes(), cfg.ease_l2)
        trial.set_user_attr("epochs", fit.two_tower_epochs)
        return float(result.metrics["model_ndcg@10"])

    study.optimize(objective, timeout=seconds, n_trials=None, gc_after_trial=True)
    best = study.best_trial
    cfg, tt_cfg = _suggest(optuna.trial.FixedTrial(best.params), base)
    epochs = int(best.user_attrs.get("epochs", max_epochs))
    record = {
        "tuned": True,
        "trials": len(study.trials),
        "budget_seconds": seconds,
        "seconds": round(time.perf_counter() - started, 1),
        "objective": f"pipeline ndcg@10 on the validation window (the {base.holdout_days} days before the holdout)",
        "best_value": best.value,
        "params": {**best.params, "epochs": epochs},
    }
    return cfg, tt_cfg, epochs, record
