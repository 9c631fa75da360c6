"""The ranker: an MLP over user + item contract features and the two-tower score, read BY NAME.

`Ranker.forward` takes a mapping name -> tensor and picks the features it was trained on by name,
so a caller may pass more features, or the same ones in another order, and get identical scores;
a missing feature fails with its name. The checkpoint stores the feature list, their contract
entries, the standardisation statistics and the contract hash, so serving can check that it feeds
the ranker what it learnt from. Trained with BCE on `features.training_examples` labels.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch import Tensor, nn

from streamrec.contracts.schema import Feature
from streamrec.models_ml.model import FeatureEncoder, feature_from_dict, feature_to_dict, take

# The two-tower score is a model output, not a contract feature; it gets a contract-like entry so the
# ranker encodes it like any other number.
TWO_TOWER_SCORE = Feature(
    name="two_tower_score",
    entity="model",
    dtype="float64",
    unit="score",
    nullable=False,
    description="Dot product of the user and item two-tower embeddings (cosine similarity).",
    min=-1.0,
    max=1.0,
)


# A pass-through ranker (RankerConfig.source_score) adds the two-tower score (a cosine in [-1, 1]) times this:
# small against the differences between a user's top source scores, so it decides ties (e.g. a user without
# history, whose EASE scores are all 0) and little else.
SOURCE_TIE_WEIGHT = 1e-4


@dataclass
class RankerConfig:
    """Ranker shape; stored in the checkpoint to rebuild the model."""

    hidden_dims: tuple[int, ...] = (128, 64)  # MLP hidden layer widths
    code_dim: int = 8  # embedding size of each `_code` feature
    dropout: float = 0.1  # dropout after each hidden layer while training
    features: list[dict[str, Any]] = field(default_factory=list)  # contract entries, in the ranker's order
    # None: the MLP's logit. A source input's name (e.g. "ease_score"): the ranker passes that source's score
    # through (ties by the two-tower score) instead, because its training rows had one class only (data
    # without logged skips, such as MovieLens ratings) and an MLP fitted on them would be a constant.
    source_score: str | None = None
    # With `source_score`: further named inputs added to it, each times its weight (a rank input enters as
    # 1 / rank, everything else as it is). Chosen on the training run's holdout (models_ml.blend) and stored
    # here, so serving computes the very blend that was validated.
    blend: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PrecomputedItems:
    """The ranker's input columns that depend on item features only, encoded once per catalogue."""

    names: tuple[str, ...]  # the item features they come from
    columns: Tensor  # (c,) their positions in the encoder output
    values: Tensor  # (n_items, c) float32, catalogue row order


class Ranker(nn.Module):
    """P(engagement | user, item) from named features; `forward` returns logits (B,)."""

    def __init__(self, cfg: RankerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.features = [feature_from_dict(f) for f in cfg.features]
        self.encoder = FeatureEncoder(self.features, cfg.code_dim, owner="ranker")
        layers: list[nn.Module] = []
        width = self.encoder.out_dim
        for hidden in cfg.hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(cfg.dropout)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)
        self.contract_sha256 = ""
        self._layouts: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[Tensor, Tensor]] = {}

    @property
    def feature_names(self) -> list[str]:
        """The features the ranker reads, in the order it was configured with."""
        return [f.name for f in self.features]

    def forward(self, features: Mapping[str, Tensor]) -> Tensor:
        if self.cfg.source_score is not None:
            return self.passed_through(features)
        return self.mlp(self.encoder(features)).squeeze(-1)  # (B,)

    def passed_through(self, features: Mapping[str, Tensor]) -> Tensor:
        """The `source_score` ranking: that input, plus its `blend` terms, plus the two-tower score x
        SOURCE_TIE_WEIGHT to break ties."""
        assert self.cfg.source_score is not None
        score = take(features, self.cfg.source_score, "ranker").to(torch.float32)
        for name, weight in self.cfg.blend.items():
            if weight:
                score = score + weight * blend_term(name, take(features, name, "ranker"))
        if TWO_TOWER_SCORE.name in self.feature_names:
            score = score + SOURCE_TIE_WEIGHT * take(features, TWO_TOWER_SCORE.name, "ranker").to(torch.float32)
        return score  # (B,)

    @torch.inference_mode()
    def precompute_items(self, item_features: Mapping[str, Tensor], chunk: int = 65_536) -> PrecomputedItems:
        """Encode the ranker's item-feature columns for a whole catalogue once (serving load time).

        `item_features`: name -> (n_items,) tensors, rows in catalogue order. Scoring candidates then
        gathers these rows instead of re-encoding the same item features on every request.
        """
        names = tuple(f.name for f in self.features if f.entity == "item")
        n_items = len(next(iter(item_features.values()))) if item_features else 0
        columns = self.encoder.columns(names)
        values = torch.empty(n_items, len(columns))
        if columns:
            for start in range(0, n_items, chunk):
                part = {name: take(item_features, name, "ranker")[start : start + chunk] for name in names}
                values[start : start + chunk] = self.encoder.encode(part, names)
        return PrecomputedItems(names=names, columns=torch.tensor(columns, dtype=torch.int64), values=values)

    @torch.inference_mode()
    def score_rows(
        self,
        items: PrecomputedItems,
        rows: Tensor,
        shared: Mapping[str, Tensor],
        per_row: Mapping[str, Tensor],
    ) -> Tensor:
        """Logits (len(rows),) for catalogue `rows`, equal to `forward` on the joined batch.

        Item features come from `items` (precomputed), features of one row from `shared` (the
        user's: encoded once, broadcast to every row) and the rest from `per_row` (e.g. the two-tower
        score), all by name; a feature the ranker needs that none of them has raises MissingFeature.
        """
        if self.cfg.source_score is not None:
            return self.passed_through(per_row)
        needed = [name for name in self.feature_names if name not in items.names]
        shared_names = tuple(name for name in needed if name in shared)
        row_names = tuple(name for name in needed if name not in shared)
        layout = self._layouts.get((shared_names, row_names))
        if layout is None:
            layout = self._layouts[(shared_names, row_names)] = (
                torch.tensor(self.encoder.columns(shared_names), dtype=torch.int64),
                torch.tensor(self.encoder.columns(row_names), dtype=torch.int64),
            )
        shared_columns, row_columns = layout
        # The first layer is linear in its input columns, so it splits into per-source products: the
        # user's share is computed once (1 row) instead of once per candidate, and nothing is concatenated.
        first = self.mlp[0]
        assert isinstance(first, nn.Linear)  # the first layer is linear by construction (make_ranker)
        hidden = items.values.index_select(0, rows) @ first.weight[:, items.columns].T
        bias: Tensor = first.bias
        if shared_names:
            bias = bias + self.encoder.encode(shared, shared_names) @ first.weight[:, shared_columns].T  # (1, h)
        if row_names:
            hidden = hidden + self.encoder.encode(per_row, row_names) @ first.weight[:, row_columns].T
        hidden = hidden + bias
        for layer in itertools.islice(self.mlp, 1, None):  # slicing a Sequential builds a new module per call
            hidden = layer(hidden)
        return hidden.squeeze(-1)

    def check_contract(self, contract_sha256: str) -> None:
        """Raise if the ranker was trained against another version of the feature contract."""
        from streamrec.contracts.schema import ContractViolation

        if self.contract_sha256 != contract_sha256:
            raise ContractViolation(
                f"ranker was trained against contract {self.contract_sha256[:12]}, "
                f"but the current contract is {contract_sha256[:12]}: retrain or serve the matching bundle"
            )


def blend_term(name: str, values: Tensor) -> Tensor:
    """How a named input enters a blend: a rank (`*_rank`, 1-based) as 1 / rank, any other input as it is."""
    values = values.to(torch.float32)
    return 1.0 / values.clamp(min=1.0) if name.endswith("_rank") else values


def make_ranker(features: Sequence[Feature], cfg: RankerConfig | None = None) -> Ranker:
    """A fresh ranker over `features` (contract entries, plus TWO_TOWER_SCORE if wanted)."""
    cfg = cfg or RankerConfig()
    cfg.features = [feature_to_dict(f) for f in features]
    return Ranker(cfg)


def bce_loss(logits: Tensor, labels: Tensor, weights: Tensor | None = None) -> Tensor:
    """Binary cross-entropy on engagement labels (1 = play/complete/like, 0 = skip), optionally weighted per row.

    With `weights` (e.g. positives by watch seconds) the loss is the weighted mean, so a row of weight 2
    counts as two rows: the ranker then orders by expected watch-weighted engagement.
    """
    labels = labels.to(torch.float32)
    if weights is None:
        return F.binary_cross_entropy_with_logits(logits, labels)
    return (F.binary_cross_entropy_with_logits(logits, labels, reduction="none") * weights).sum() / weights.sum()


def save_ranker(
    ranker: Ranker, path: Path, contract_sha256: str, train_config: Mapping[str, object] | None = None
) -> None:
    """Write the ranker checkpoint: config, weights, feature names, norm, contract hash and `train_config`."""
    torch.save(
        {
            "config": asdict(ranker.cfg),
            "train_config": dict(train_config or {}),
            "state_dict": ranker.state_dict(),
            "feature_names": ranker.feature_names,
            "norm": ranker.encoder.norm(),
            "contract_sha256": contract_sha256,
        },
        path,
    )


def load_ranker(path: Path) -> Ranker:
    """Rebuild a Ranker from its checkpoint alone, in eval mode, remembering its contract hash."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    cfg = checkpoint["config"]
    cfg["hidden_dims"] = tuple(cfg["hidden_dims"])
    ranker = Ranker(RankerConfig(**cfg))
    ranker.load_state_dict(checkpoint["state_dict"])
    ranker.contract_sha256 = checkpoint["contract_sha256"]
    return ranker.eval()
