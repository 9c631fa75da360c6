"""The two-tower retrieval model: a user tower and an item tower that read contract features by name.

Each tower turns a mapping name -> tensor (raw feature values as `models_ml.data.to_tensors` makes
them: numbers with NaN for null, flags as 0/1, codes as indices into the contract's code list) into
one 128-d L2-normalised vector, so user-item affinity is a dot product a FAISS inner-product index
can search. Standardisation statistics live in the model (buffers, also saved as `norm`), so a
checkpoint rebuilds the whole transformation from the artifact alone.

Train with `in_batch_softmax_loss` (sampled softmax over the batch's items with the logQ
popularity correction); see `models_ml.train`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch import Tensor, nn

from streamrec.contracts.schema import Feature
from streamrec.core.errors import StreamRecError


class MissingFeature(StreamRecError, KeyError):
    """A model was given a batch without one of the features it was trained on."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


@dataclass
class TwoTowerConfig:
    """Shape and training temperature of the two towers; stored in the checkpoint to rebuild the model."""

    embedding_dim: int = 128  # output size of both towers (the FAISS index dimension)
    hidden_dim: int = 256  # width of each tower's hidden layer
    id_dim: int = 32  # user-id / item-id embedding size; row 0 is the unknown (cold-start) id
    code_dim: int = 8  # embedding size of each `_code` feature
    temperature: float = 0.05  # softmax temperature on cosine similarities
    id_dropout: float = 0.1  # share of training ids replaced by the unknown id so cold users/items work
    n_user_ids: int = 0  # size of the user-id vocabulary (set at training time)
    n_item_ids: int = 0  # size of the item-id vocabulary (set at training time)
    user_features: list[dict[str, Any]] = field(default_factory=list)  # contract entries of the user tower
    item_features: list[dict[str, Any]] = field(default_factory=list)  # contract entries of the item tower


def feature_to_dict(feature: Feature) -> dict[str, Any]:
    """A contract feature as plain JSON-able data (for checkpoints and feature_schema.json)."""
    return {
        "name": feature.name,
        "entity": feature.entity,
        "dtype": feature.dtype,
        "unit": feature.unit,
        "min": feature.min,
        "max": feature.max,
        "nullable": feature.nullable,
        "codes": list(feature.codes),
        "description": feature.description,
    }


def feature_from_dict(data: Mapping[str, Any]) -> Feature:
    """Inverse of `feature_to_dict`."""
    return Feature(
        name=data["name"],
        entity=data["entity"],
        dtype=data["dtype"],
        unit=data["unit"],
        nullable=bool(data["nullable"]),
        description=data.get("description", ""),
        min=data.get("min"),
        max=data.get("max"),
        codes=tuple(data.get("codes") or ()),
    )


def take(batch: Mapping[str, Tensor], name: str, owner: str) -> Tensor:
    """`batch[name]`, or an error that names the missing feature and who needed it."""
    try:
        return batch[name]
    except KeyError:
        raise MissingFeature(
            f"{owner} needs feature {name!r}, which the batch does not have (it has {sorted(batch)})"
        ) from None


class FeatureEncoder(nn.Module):
    """Named raw features -> one dense vector: standardised numbers, missing indicators, code embeddings.

    Counts are log1p-compressed before standardising (they are heavy-tailed); nulls become 0 after
    standardising (the mean) plus a 0/1 missing indicator for every nullable feature.
    """

    mean: Tensor  # (n_numeric,) buffers: standardisation statistics from the training rows
    std: Tensor

    def __init__(self, features: Sequence[Feature], code_dim: int, owner: str) -> None:
        super().__init__()
        self.owner = owner
        self.numeric_names = [f.name for f in features if not f.codes]
        self.log_mask = [f.unit == "count" for f in features if not f.codes]
        self.nullable_index = [i for i, f in enumerate(f for f in features if not f.codes) if f.nullable]
        self.code_names = [f.name for f in features if f.codes]
        self.register_buffer("mean", torch.zeros(len(self.numeric_names)))
        self.register_buffer("std", torch.ones(len(self.numeric_names)))
        self.code_embeddings = nn.ModuleDict(
            {f.name: nn.Embedding(len(f.codes), code_dim) for f in features if f.codes}
        )
        self.out_dim = len(self.numeric_names) + len(self.nullable_index) + code_dim * len(self.code_names)

    @property
    def feature_names(self) -> list[str]:
        """Every feature this encoder reads, numbers first then codes."""
        return self.numeric_names + self.code_names

    def _numbers(self, batch: Mapping[str, Tensor], index: Sequence[int] | None = None) -> Tensor:
        """Raw numbers (log1p for counts) of the numeric features at `index` (all by default), (B, n)."""
        index = range(len(self.numeric_names)) if index is None else index
        if not len(index):
            return torch.zeros(0)
        names = [self.numeric_names[i] for i in index]
        x = torch.stack([take(batch, n, self.owner).to(torch.float32) for n in names], dim=1)  # (B, n)
        log_mask = torch.tensor([self.log_mask[i] for i in index], dtype=torch.bool)
        return torch.where(log_mask, torch.log1p(x.clamp(min=0)), x)

    @torch.no_grad()
    def fit_norm(self, batch: Mapping[str, Tensor]) -> dict[str, list[float]]:
        """Set mean/std from training rows (NaNs ignored); returns them by feature name."""
        if not self.numeric_names:
            return {}
        x = self._numbers(batch).to(torch.float64)
        present = ~torch.isnan(x)
        count = present.sum(0).clamp(min=1)
        mean = torch.where(present, x, 0).sum(0) / count
        var = torch.where(present, (x - mean) ** 2, 0).sum(0) / count
        std = var.sqrt()
        std = torch.where(std > 1e-6, std, torch.ones_like(std))  # constant columns pass through centred
        self.mean.copy_(mean.float())
        self.std.copy_(std.float())
        return {n: [float(m), float(s)] for n, m, s in zip(self.numeric_names, mean, std, strict=True)}

    def norm(self) -> dict[str, list[float]]:
        """The stored standardisation statistics by feature name."""
        return {n: [float(m), float(s)] for n, m, s in zip(self.numeric_names, self.mean, self.std, strict=True)}

    def columns(self, names: Collection[str]) -> list[int]:
        """Output columns computed from the features `names` only, in output order (`encode(batch, names)`'s)."""
        n_numeric = len(self.numeric_names)
        columns = [i for i, name in enumerate(self.numeric_names) if name in names]
        columns += [n_numeric + j for j, i in enumerate(self.nullable_index) if self.numeric_names[i] in names]
        offset = n_numeric + len(self.nullable_index)
        for k, name in enumerate(self.code_names):
            embedding = self.code_embeddings[name]
            assert isinstance(embedding, nn.Embedding)
            dim = embedding.embedding_dim
            if name in names:
                columns += range(offset + k * dim, offset + (k + 1) * dim)
        return columns

    def encode(self, batch: Mapping[str, Tensor], names: Collection[str] | None = None) -> Tensor:
        """The encoder output restricted to the columns of `names` (`columns(names)`); all columns by default.

        Each column depends on one feature only, so encoding item features once per catalogue and
        user features once per request gives exactly the columns `forward` computes on the joined batch.
        """
        if names is None:
            numeric = list(range(len(self.numeric_names)))
            codes = self.code_names
        else:
            numeric = [i for i, name in enumerate(self.numeric_names) if name in names]
            codes = [name for name in self.code_names if name in names]
        parts = []
        if numeric:
            x = self._numbers(batch, numeric)  # (B, n_numeric)
            missing = torch.isnan(x)
            x = torch.where(missing, 0.0, (x - self.mean[numeric]) / self.std[numeric])
            position = {i: j for j, i in enumerate(numeric)}
            nullable = [position[i] for i in self.nullable_index if i in position]
            parts += [x, missing[:, nullable].to(torch.float32)]
        for name in codes:
            parts.append(self.code_embeddings[name](take(batch, name, self.owner).long()))  # (B, code_dim)
        return torch.cat(parts, dim=1)

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        return self.encode(batch)


class IdEmbedding(nn.Module):
    """Embedding of raw ids through a sorted vocabulary; ids never seen in training share row 0."""

    known_ids: Tensor  # (n_ids,) buffer: the sorted training vocabulary

    def __init__(self, n_ids: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("known_ids", torch.zeros(n_ids, dtype=torch.int64))
        self.table = nn.Embedding(n_ids + 1, dim)
        nn.init.normal_(self.table.weight, std=0.05)

    def set_vocabulary(self, ids: Tensor) -> None:
        """Store the training ids (sorted, unique); must match the size given at construction."""
        self.known_ids.copy_(torch.unique(ids.to(torch.int64)))

    def rows(self, ids: Tensor) -> Tensor:
        """Row of each id in the table (0 = unknown)."""
        ids = ids.to(torch.int64)
        if self.known_ids.numel() == 0:
            return torch.zeros_like(ids)
        pos = torch.searchsorted(self.known_ids, ids).clamp(max=self.known_ids.numel() - 1)
        return torch.where(self.known_ids[pos] == ids, pos + 1, 0)

    def forward(self, ids: Tensor, dropout: float = 0.0) -> Tensor:
        rows = self.rows(ids)
        if dropout > 0:
            rows = torch.where(torch.rand(rows.shape) < dropout, 0, rows)
        return self.table(rows)


class Tower(nn.Module):
    """Features (by name) + id embedding -> MLP -> L2-normalised embedding."""

    def __init__(self, features: Sequence[Feature], id_key: str, n_ids: int, cfg: TwoTowerConfig, owner: str) -> None:
        super().__init__()
        self.id_key = id_key
        self.owner = owner
        self.id_dropout = cfg.id_dropout
        self.encoder = FeatureEncoder(features, cfg.code_dim, owner)
        self.ids = IdEmbedding(n_ids, cfg.id_dim)
        self.mlp = nn.Sequential(
            nn.Linear(self.encoder.out_dim + cfg.id_dim, cfg.hidden_dim),
            nn.ReLU(),
            nn.Linear(cfg.hidden_dim, cfg.embedding_dim),
        )

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        ids = take(batch, self.id_key, self.owner)
        x = torch.cat([self.encoder(batch), self.ids(ids, self.id_dropout if self.training else 0.0)], dim=1)
        return F.normalize(self.mlp(x), dim=-1)  # (B, embedding_dim)


class TwoTower(nn.Module):
    """User and item towers sharing an embedding space; affinity = dot product of unit vectors."""

    def __init__(self, cfg: TwoTowerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.user_features = [feature_from_dict(f) for f in cfg.user_features]
        self.item_features = [feature_from_dict(f) for f in cfg.item_features]
        self.user_tower = Tower(self.user_features, "user_id", cfg.n_user_ids, cfg, "two-tower user tower")
        self.item_tower = Tower(self.item_features, "item_id", cfg.n_item_ids, cfg, "two-tower item tower")

    @property
    def user_feature_names(self) -> list[str]:
        """Contract features the user tower reads, in contract order."""
        return [f.name for f in self.user_features]

    @property
    def item_feature_names(self) -> list[str]:
        """Contract features the item tower reads, in contract order."""
        return [f.name for f in self.item_features]

    def user_embedding(self, batch: Mapping[str, Tensor]) -> Tensor:
        """(B, 128) unit vectors for a batch with `user_id` and the user features by name."""
        return self.user_tower(batch)

    def item_embedding(self, batch: Mapping[str, Tensor]) -> Tensor:
        """(N, 128) unit vectors for a batch with `item_id` and the item features by name."""
        return self.item_tower(batch)

    def norm(self) -> dict[str, list[float]]:
        """Standardisation statistics of both towers by feature name."""
        return {**self.user_tower.encoder.norm(), **self.item_tower.encoder.norm()}


def in_batch_softmax_loss(
    user_emb: Tensor, item_emb: Tensor, item_ids: Tensor, log_q: Tensor, temperature: float
) -> Tensor:
    """Sampled softmax over the batch's items with the logQ correction (Yi et al., RecSys 2019).

    Row b's positive is item b; the other items in the batch are its negatives. Popular items show
    up as negatives more often than uniform sampling would, so each column's logit is lowered by
    log q(item), its sampling probability. Other rows holding the same item are masked out, since
    they are positives of this user too, not negatives.
    """
    logits = user_emb @ item_emb.T / temperature - log_q[None, :]  # (B, B)
    same_item = item_ids[:, None] == item_ids[None, :]
    same_item.fill_diagonal_(False)
    logits = logits.masked_fill(same_item, -math.inf)
    return F.cross_entropy(logits, torch.arange(len(user_emb)))


def save_two_tower(
    model: TwoTower, path: Path, contract_sha256: str, train_config: Mapping[str, object] | None = None
) -> None:
    """Write the checkpoint layout agreed for bundles (config, weights, feature names, norm, contract hash).

    `train_config`: the optimisation settings it was trained with (TrainConfig as a dict), stored beside
    the model's own config so a checkpoint alone says how to reproduce it.
    """
    torch.save(
        {
            "config": asdict(model.cfg),
            "train_config": dict(train_config or {}),
            "state_dict": model.state_dict(),
            "user_feature_names": model.user_feature_names,
            "item_feature_names": model.item_feature_names,
            "norm": model.norm(),
            "contract_sha256": contract_sha256,
        },
        path,
    )


def load_two_tower(path: Path) -> TwoTower:
    """Rebuild a TwoTower from its checkpoint alone, in eval mode."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = TwoTower(TwoTowerConfig(**checkpoint["config"]))
    model.load_state_dict(checkpoint["state_dict"])
    model.contract_sha256 = checkpoint["contract_sha256"]
    return model.eval()
