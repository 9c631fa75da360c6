"""`streamrec versions --metrics` and `streamrec versions compare A B`: what the registry stores about each bundle.

Everything comes from what registration stored (`ops.model_versions`, including `metrics_json`) and from
the bundle's own checkpoints (the config dataclasses saved with the weights), so two versions can be
compared without loading a model: offline metrics, data sources (feature and split `as_of`, example
counts), hyperparameters (seed, epochs, model and ranker configs, index parameters), contract hash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamrec.core.errors import StreamRecError
from streamrec.core.settings import Settings
from streamrec.models_ml.bundle import RANKER_FILE, RETRIEVAL_FILE
from streamrec.models_ml.registry import bundle_path, list_versions

SOURCE_KEYS = (
    "features_as_of",
    "split_as_of",
    "train_positives",
    "train_examples",
    "refit",
    "refit_examples_before",
    "refit_train_positives",
    "refit_train_examples",
)
HYPERPARAMETER_KEYS = ("seed", "epochs", "index_params")
PROVENANCE_KEYS = ("contract_sha256", "manifest_sha256", "index_kind", "n_items", "created_at")
# Lists (per-epoch losses) and timings are not comparable as one number; they stay in metrics_json.
SKIPPED = {"two_tower_loss_by_epoch", "ranker_loss_by_epoch", "seconds_per_epoch", "index_build_seconds"}


@dataclass(frozen=True)
class Difference:
    """One compared field: its section, name, both values and whether they differ."""

    section: str
    name: str
    a: Any
    b: Any

    @property
    def differs(self) -> bool:
        """Whether the two versions disagree on this field."""
        return self.a != self.b


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The offline metrics that are single numbers (recall@10, ndcg@10, AUC, ...), by name."""
    return {
        name: float(value)
        for name, value in sorted(metrics.items())
        if name not in SKIPPED
        and name not in SOURCE_KEYS
        and name not in HYPERPARAMETER_KEYS
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    }


def _checkpoint_configs(bundle_dir: Path) -> dict[str, Any]:
    import torch

    configs: dict[str, Any] = {}
    for prefix, name in (("two_tower", RETRIEVAL_FILE), ("ranker", RANKER_FILE)):
        path = bundle_dir / name
        if not path.is_file():
            continue
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        for key, value in sorted((checkpoint.get("config") or {}).items()):
            configs[f"{prefix}.{key}"] = value
    return configs


def _version(settings: Settings, version: str) -> dict[str, Any]:
    rows = {row["version"]: row for row in list_versions(settings)}
    if version not in rows:
        known = ", ".join(rows) or "none"
        raise StreamRecError(f"no registered version {version!r} (registered: {known})")
    return rows[version]


def compare(settings: Settings, a: str, b: str) -> list[Difference]:
    """Every stored field of versions `a` and `b`, section by section."""
    left, right = _version(settings, a), _version(settings, b)
    out: list[Difference] = []
    metrics_a, metrics_b = scalar_metrics(left["metrics"]), scalar_metrics(right["metrics"])
    for name in sorted(set(metrics_a) | set(metrics_b)):
        out.append(Difference("offline metrics", name, metrics_a.get(name), metrics_b.get(name)))
    for name in SOURCE_KEYS:
        out.append(Difference("sources", name, left["metrics"].get(name), right["metrics"].get(name)))
    hyper_a = {k: left["metrics"].get(k) for k in HYPERPARAMETER_KEYS}
    hyper_b = {k: right["metrics"].get(k) for k in HYPERPARAMETER_KEYS}
    hyper_a |= {f"train.{k}": v for k, v in (left["metrics"].get("hyperparameters") or {}).items()}
    hyper_b |= {f"train.{k}": v for k, v in (right["metrics"].get("hyperparameters") or {}).items()}
    hyper_a |= _checkpoint_configs(bundle_path(settings, left["bundle_path"]))
    hyper_b |= _checkpoint_configs(bundle_path(settings, right["bundle_path"]))
    for name in sorted(set(hyper_a) | set(hyper_b), key=lambda n: (n.count("."), n)):
        out.append(Difference("hyperparameters", name, hyper_a.get(name), hyper_b.get(name)))
    for name in PROVENANCE_KEYS:
        out.append(Difference("provenance", name, left.get(name), right.get(name)))
    return out


def text(value: Any) -> str:
    """A compared value as one short cell."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)
